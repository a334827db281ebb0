// Command pause is the sandbox ("pause") container of the opt-in real node:
// registry.k8s.io/pause cannot be pulled here, so containerd's sandbox_image
// is this static binary in an image built locally. Like the upstream one it
// sleeps until SIGINT or SIGTERM and reaps children it inherits as PID 1.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for s := range sigs {
		if s != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			var ws syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
