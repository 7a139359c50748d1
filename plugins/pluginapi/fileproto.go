package pluginapi

import "strings"

// The file protocol's rules (DESIGN §7), shared by the file plugin and the
// host that consumes it: a third party can implement either side from
// this page and the proto.
//
// A Watch stream sends the state of every reader (ReaderState.reader is
// the reader's NAME), then one state with an empty reader name whose
// message is FileSyncMarker, then every change. A static root's files are
// tracked once the host has asked about them (Check "NAME/PATH"), and a
// change of one is sent as the state of "NAME/PATH": deleted, or a new
// id. A second sync marker on one stream means a new plugin instance
// (a relaunch or a swap): it tracks no static file yet.

// FileSyncMarker is the message of the state with an empty reader name
// that follows the full state at the start of every watch stream.
const FileSyncMarker = "synced"

// Error codes of ReaderState.error; ReaderState.message says more.
const (
	FileErrMissing    = "missing"     // no file at the path, nothing served before
	FileErrUnreadable = "unreadable"  // stat, open, mmap or read failed
	FileErrNotRegular = "not_regular" // a directory, a device, a socket …
	FileErrTooLarge   = "too_large"   // larger than max_size
)

// FileStateKind says what one state of a watch stream is about.
type FileStateKind int

const (
	FileStateReader FileStateKind = iota // a named reader ("NAME")
	FileStateSync                        // the sync marker
	FileStateStatic                      // a static root's file ("NAME/PATH")
)

// KindOfFileState classifies a state of a watch stream by its reader name
// and message.
func KindOfFileState(reader, message string) FileStateKind {
	switch {
	case reader == "" && message == FileSyncMarker:
		return FileStateSync
	case strings.Contains(reader, "/"):
		return FileStateStatic
	}
	return FileStateReader
}

// StaticFileName is the reader name of the file at rel under the static
// root root.
func StaticFileName(root, rel string) string { return root + "/" + rel }
