package pluginapi

import (
	"context"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/hashicorp/go-hclog"
)

// EnvLifelineFD names the environment variable that carries the number of
// the lifeline descriptor: the read end of a pipe whose write end only the
// host holds. The kernel closes the write end when the host dies, however
// it dies (kill -9 included), and the plugin reads EOF.
//
// go-plugin alone does not stop a plugin whose host was killed: the plugin's
// stdin is the host's stdin, its stdout and stderr are only written, and the
// gRPC server waits for connections forever. So Serve watches the lifeline
// and, as a fallback for hosts that pass none, its parent pid: a plugin
// whose parent changed has been orphaned.
const EnvLifelineFD = "EDGEHOST_PLUGIN_LIFELINE_FD"

// parentPollInterval is how often the parent pid is compared.
const parentPollInterval = 500 * time.Millisecond

// watchHost starts the watchdogs that stop the process once the host is
// gone. Their goroutines end with the process.
func watchHost(impl Plugin, log hclog.Logger) {
	gone := make(chan string, 2)
	if s := os.Getenv(EnvLifelineFD); s != "" {
		if fd, err := strconv.Atoi(s); err == nil && fd > 2 {
			f := os.NewFile(uintptr(fd), "lifeline")
			go func() {
				_, err := io.Copy(io.Discard, f)
				if err == nil {
					gone <- "lifeline closed"
				}
				// A read error says nothing about the host; the parent pid
				// watch still runs.
			}()
		}
	}
	ppid := os.Getppid()
	go func() {
		t := time.NewTicker(parentPollInterval)
		defer t.Stop()
		for range t.C {
			if os.Getppid() != ppid {
				gone <- "parent process changed"
				return
			}
		}
	}()
	go func() {
		why := <-gone
		log.Warn("host is gone, exiting", "reason", why)
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = impl.Shutdown(ctx)
		cancel()
		os.Exit(3)
	}()
}
