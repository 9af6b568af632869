// Command pause is the pod sandbox process of the dev cluster's node (containerd's sandbox_image): it holds the
// pod's namespaces, reaps the orphans of a shared PID namespace and exits on SIGINT or SIGTERM. It does what
// Kubernetes' pause.c does, in Go, so that it builds with the rest of the pinned module (no C toolchain).
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	if os.Getpid() != 1 {
		os.Stderr.WriteString("pause: warning: not running as PID 1\n")
	}
	signals := make(chan os.Signal, 16)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for sig := range signals {
		if sig != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			var status syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &status, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
