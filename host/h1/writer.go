package h1

import "net"

// Writer is what a Fast handler writes a whole response with.
type Writer struct {
	c    *conn
	head []byte
	arr  [2][]byte
	bufs net.Buffers
}

// Head returns a reusable scratch buffer to build the response head in.
func (w *Writer) Head() []byte { return w.head[:0] }

// WriteResponse sends head then body (nil for HEAD). With nothing else
// buffered and a body worth it, both leave in one writev without copying
// the body; otherwise they go through the connection's buffer, which the
// server flushes when no pipelined request is waiting.
func (w *Writer) WriteResponse(head, body []byte) error {
	w.head = head[:0] // keep the grown scratch buffer for the next response
	bw := w.c.bw
	if bw.Buffered() == 0 && len(body) >= 2048 && !headBuffered(w.c.br) {
		w.c.armWrite()
		if w.c.raw != nil {
			_, err := w.c.raw.writev(head, body)
			return err
		}
		// WriteTo consumes the slice: rebuild it on the fixed array so
		// that nothing is allocated per response.
		w.arr[0], w.arr[1] = head, body
		w.bufs = w.arr[:]
		_, err := w.bufs.WriteTo(w.c.nc)
		w.arr[0], w.arr[1] = nil, nil
		return err
	}
	bw.Write(head)
	_, err := bw.Write(body)
	return err
}
