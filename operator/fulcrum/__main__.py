from fulcrum.cli import main

main()
