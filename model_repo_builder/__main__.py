"""``python -m model_repo_builder build ...``."""

from model_repo_builder.cli import main

if __name__ == "__main__":
    main()
