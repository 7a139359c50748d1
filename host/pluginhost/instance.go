package pluginhost

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/edgehost/edgehost/plugins/pluginapi"
)

// instance is one plugin process and its go-plugin client. A client is
// single-use (STYLE 12): a relaunch or a swap makes a new instance.
type instance struct {
	client  *plugin.Client
	api     *pluginapi.Client
	info    *pluginapi.Info
	bin     binary
	pid     int
	started time.Time
	log     *slog.Logger

	lifeline *os.File // write end; the plugin reads EOF when it closes

	// exited is closed once the process has exited (polled: go-plugin
	// offers no channel).
	exited   chan struct{}
	stopPoll chan struct{}

	// streams ends the instance's long-lived streams (watches) when it is
	// retired, so that they move to the new instance and do not hold up
	// the drain.
	streams       context.Context
	cancelStreams context.CancelFunc

	mu       sync.Mutex
	inflight int
	retiring bool
	idle     chan struct{} // closed when retiring and inflight reaches 0
	stopOnce sync.Once
}

// exitPollInterval is how often an instance's process is checked for an
// exit; it bounds how late a crash is noticed.
const exitPollInterval = 50 * time.Millisecond

// launch starts the binary and dispenses the plugin: the go-plugin client
// config of STYLE 11, in one place. The instance is not checked yet.
func (m *Manager) launch(name string, bin binary, env []string, log *slog.Logger) (*instance, error) {
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		var inst *instance
		inst, err = m.launchOnce(name, bin, env, log)
		if err == nil {
			return inst, nil
		}
		// A fresh copy may still be open for writing in a child forked
		// meanwhile by another goroutine (between its fork and exec):
		// exec then fails with "text file busy" for a moment.
		if !strings.Contains(err.Error(), syscall.ETXTBSY.Error()) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nil, err
}

func (m *Manager) launchOnce(name string, bin binary, env []string, log *slog.Logger) (*instance, error) {
	cmd := exec.Command(bin.path)
	cmd.Env = append(slices.Clone(env), pluginapi.EnvLogLevel+"="+logLevelName(log))
	var lifeR, lifeW *os.File
	if !m.opts.disableLifeline {
		var err error
		if lifeR, lifeW, err = os.Pipe(); err != nil {
			return nil, fmt.Errorf("lifeline: %w", err)
		}
		cmd.ExtraFiles = []*os.File{lifeR} // fd 3 in the plugin
		cmd.Env = append(cmd.Env, pluginapi.EnvLifelineFD+"=3")
	}
	// The data path (pluginapi/datapath.go): the plugin uses it when its
	// Info says it serves it, else every call stays on gRPC.
	offer, err := pluginapi.OfferDataPath(cmd)
	if err != nil {
		if lifeW != nil {
			lifeR.Close()
			lifeW.Close()
		}
		return nil, fmt.Errorf("data path: %w", err)
	}
	stderrTail := &tailBuffer{}
	client := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  pluginapi.Handshake,
		VersionedPlugins: pluginapi.ClientPluginSets(),
		Cmd:              cmd,
		SecureConfig:     &plugin.SecureConfig{Checksum: bin.sum(), Hash: sha256.New()},
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		AutoMTLS:         true,
		GRPCDialOptions:  pluginapi.DialOptions(),
		SkipHostEnv:      true,
		Logger:           &hcLogger{l: log},
		StartTimeout:     m.opts.StartTimeout,
		Stderr:           stderrTail,
		SyncStdout:       &lineWriter{log: func(s string) { log.Info(s, "stream", "stdout") }},
		SyncStderr:       &lineWriter{log: func(s string) { log.Info(s, "stream", "stderr") }},
	})
	fail := func(err error) (*instance, error) {
		client.Kill()
		offer.Close()
		if lifeW != nil {
			lifeW.Close()
		}
		if tail := stderrTail.String(); tail != "" {
			err = fmt.Errorf("%w (plugin stderr: %s)", err, tail)
		}
		return nil, err
	}
	rpc, err := client.Client()
	if lifeR != nil {
		lifeR.Close() // the plugin has its own copy now
	}
	offer.Started()
	if err != nil {
		if errors.Is(err, plugin.ErrChecksumsDoNotMatch) {
			err = fmt.Errorf("%w: %s changed after it was pinned", ErrChecksum, bin.path)
		}
		if strings.Contains(strings.ToLower(err.Error()), "incompatible api version") {
			err = fmt.Errorf("%w: %v", ErrProtocol, err)
		}
		return fail(fmt.Errorf("start %s: %w", bin.source, err))
	}
	raw, err := rpc.Dispense(pluginapi.PluginKey)
	if err != nil {
		return fail(fmt.Errorf("dispense: %w", err))
	}
	api, ok := raw.(*pluginapi.Client)
	if !ok {
		return fail(fmt.Errorf("dispense: got %T", raw))
	}
	api.UseDataPath(offer) // taken into use by check's Info
	inst := &instance{
		client:   client,
		api:      api,
		bin:      bin,
		started:  time.Now(),
		log:      log,
		lifeline: lifeW,
		exited:   make(chan struct{}),
		stopPoll: make(chan struct{}),
	}
	if rc := client.ReattachConfig(); rc != nil {
		inst.pid = rc.Pid
	}
	inst.streams, inst.cancelStreams = context.WithCancel(context.Background())
	go inst.pollExit()
	return inst, nil
}

// pollExit closes exited when the process ends; it stops with stop.
func (i *instance) pollExit() {
	t := time.NewTicker(exitPollInterval)
	defer t.Stop()
	for {
		select {
		case <-i.stopPoll:
			return
		case <-t.C:
			if i.client.Exited() {
				close(i.exited)
				return
			}
		}
	}
}

func (i *instance) hasExited() bool {
	select {
	case <-i.exited:
		return true
	default:
		return false
	}
}

// check runs the checks an instance passes before it serves: Info and the
// protocol version. The caller decodes the configuration against info.
func (m *Manager) check(ctx context.Context, i *instance) error {
	ctx, cancel := context.WithTimeout(ctx, m.opts.CallTimeout)
	defer cancel()
	info, err := i.api.Info(ctx)
	if err != nil {
		return fmt.Errorf("info: %w", rpcError(err))
	}
	if !slices.Contains(info.ProtocolVersions, pluginapi.ProtocolVersion) {
		return fmt.Errorf("%w: plugin speaks %v, this host %d", ErrProtocol, info.ProtocolVersions, pluginapi.ProtocolVersion)
	}
	i.info = info
	return nil
}

// configure sends the configuration and checks health.
func (m *Manager) configure(ctx context.Context, i *instance, cfg pluginapi.Config) error {
	cctx, cancel := context.WithTimeout(ctx, m.opts.CallTimeout)
	defer cancel()
	if err := i.api.Configure(cctx, cfg); err != nil {
		return fmt.Errorf("configure: %w", rpcError(err))
	}
	hctx, cancel2 := context.WithTimeout(ctx, m.opts.HealthTimeout)
	defer cancel2()
	if err := i.api.Health(hctx); err != nil {
		return fmt.Errorf("health: %w", rpcError(err))
	}
	return nil
}

// acquire counts a call in; it fails once the instance is retiring.
func (i *instance) acquire() bool {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.retiring {
		return false
	}
	i.inflight++
	return true
}

func (i *instance) release() {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.inflight--
	if i.retiring && i.inflight == 0 {
		close(i.idle)
	}
}

// retire stops new calls, ends long-lived streams, and waits for in-flight
// calls (or ctx).
func (i *instance) retire(ctx context.Context) {
	i.mu.Lock()
	if !i.retiring {
		i.retiring = true
		i.idle = make(chan struct{})
		if i.inflight == 0 {
			close(i.idle)
		}
	}
	idle := i.idle
	n := i.inflight
	i.mu.Unlock()
	i.cancelStreams()
	select {
	case <-idle:
	case <-i.exited:
	case <-ctx.Done():
		i.log.Warn("plugin instance stopped with calls in flight", "pid", i.pid, "calls", n)
	}
}

// stop asks the plugin to shut down (within grace), then has go-plugin
// close it, which kills the process if it does not exit; it returns once
// the process is gone. Safe to call more than once.
func (i *instance) stop(grace time.Duration) {
	i.stopOnce.Do(func() {
		i.cancelStreams()
		if !i.hasExited() {
			ctx, cancel := context.WithTimeout(context.Background(), grace)
			if err := i.api.Shutdown(ctx); err != nil {
				i.log.Debug("plugin shutdown call failed", "pid", i.pid, "error", err)
			}
			cancel()
		}
		i.client.Kill()
		i.api.Close()
		if i.lifeline != nil {
			i.lifeline.Close()
		}
		close(i.stopPoll)
	})
}

func (i *instance) String() string {
	return "pid " + strconv.Itoa(i.pid)
}

// rpcError drops gRPC's "rpc error: code = Unknown desc =" from a plugin's
// own error, for diagnostics meant for people; other codes stay visible.
func rpcError(err error) error {
	if s, ok := status.FromError(err); ok && s.Code() == codes.Unknown {
		return errors.New(s.Message())
	}
	return err
}
