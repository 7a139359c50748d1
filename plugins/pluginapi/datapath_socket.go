package pluginapi

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"syscall"
)

// EnvDataFD names the environment variable that carries the number of the
// data path's control socket in a plugin (see datapath.go).
const EnvDataFD = "EDGEHOST_PLUGIN_DATA_FD"

// socketBufSize is the kernel buffer of each data path socket, each way:
// with the bufio buffers it bounds what a call holds in flight, and it is
// large enough for a 128 KiB chunk to go in one write.
const socketBufSize = 512 << 10

// socketPair returns the two ends of a new connected Unix stream socket,
// close-on-exec (a compute plugin forks programs).
func socketPair() (net.Conn, *os.File, error) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("socketpair: %w", err)
	}
	for _, fd := range fds {
		_ = syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_SNDBUF, socketBufSize)
		_ = syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_RCVBUF, socketBufSize)
	}
	f := os.NewFile(uintptr(fds[0]), "edgehost-data")
	conn, err := net.FileConn(f)
	f.Close()
	if err != nil {
		syscall.Close(fds[1])
		return nil, nil, err
	}
	return conn, os.NewFile(uintptr(fds[1]), "edgehost-data"), nil
}

// sendFile sends f's descriptor over ctl.
func sendFile(ctl *net.UnixConn, f *os.File) error {
	_, _, err := ctl.WriteMsgUnix([]byte{0}, syscall.UnixRights(int(f.Fd())), nil)
	return err
}

// recvConn receives a connection sent by sendFile; nil without an error
// when a message carried no descriptor.
func recvConn(ctl *net.UnixConn) (net.Conn, error) {
	var b [1]byte
	oob := make([]byte, syscall.CmsgSpace(4*4))
	n, oobn, _, _, err := ctl.ReadMsgUnix(b[:], oob)
	if err != nil {
		return nil, err
	}
	if n == 0 && oobn == 0 {
		return nil, net.ErrClosed
	}
	msgs, err := syscall.ParseSocketControlMessage(oob[:oobn])
	if err != nil {
		return nil, nil
	}
	var fds []int
	for i := range msgs {
		if got, err := syscall.ParseUnixRights(&msgs[i]); err == nil {
			fds = append(fds, got...)
		}
	}
	if len(fds) == 0 {
		return nil, nil
	}
	for _, fd := range fds[1:] {
		syscall.Close(fd)
	}
	f := os.NewFile(uintptr(fds[0]), "edgehost-data")
	conn, err := net.FileConn(f)
	f.Close()
	if err != nil {
		return nil, nil
	}
	return conn, nil
}

// DataPathOffer is the host's side of a data path offered to a plugin at
// launch: OfferDataPath before the command starts, Started after it has
// (or failed to), then Client.UseDataPath. The Client uses it only when
// the plugin's Info says that it serves the data path.
type DataPathOffer struct {
	host  *net.UnixConn
	child *os.File
}

// OfferDataPath creates the control socket of a data path and adds its
// plugin end to cmd (an extra file, named by EDGEHOST_PLUGIN_DATA_FD in
// cmd.Env; set cmd.Env before the call).
func OfferDataPath(cmd *exec.Cmd) (*DataPathOffer, error) {
	conn, child, err := socketPair()
	if err != nil {
		return nil, err
	}
	uc, ok := conn.(*net.UnixConn)
	if !ok {
		conn.Close()
		child.Close()
		return nil, errors.New("control socket is not a Unix socket")
	}
	fd := 3 + len(cmd.ExtraFiles)
	cmd.ExtraFiles = append(cmd.ExtraFiles, child)
	cmd.Env = append(cmd.Env, EnvDataFD+"="+strconv.Itoa(fd))
	return &DataPathOffer{host: uc, child: child}, nil
}

// Started closes this process's copy of the plugin's end, once the plugin
// has been started (or failed to start).
func (o *DataPathOffer) Started() {
	if o.child != nil {
		o.child.Close()
		o.child = nil
	}
}

// Close closes the offer when it is not used.
func (o *DataPathOffer) Close() error {
	o.Started()
	return o.host.Close()
}

// dataPathFromEnv is the control socket that the host handed this plugin,
// or nil.
func dataPathFromEnv() *net.UnixConn {
	s := os.Getenv(EnvDataFD)
	if s == "" {
		return nil
	}
	fd, err := strconv.Atoi(s)
	if err != nil || fd <= 2 {
		return nil
	}
	f := os.NewFile(uintptr(fd), "edgehost-data-control")
	conn, err := net.FileConn(f)
	f.Close()
	if err != nil {
		return nil
	}
	uc, _ := conn.(*net.UnixConn)
	return uc
}
