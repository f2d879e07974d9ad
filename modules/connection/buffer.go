package connection

import "sync"

// maxPooledBuffer keeps one huge batch from pinning memory in the pool.
const maxPooledBuffer = 64 << 10

// buffers holds write buffers between writes, so an idle socket holds none.
var buffers = sync.Pool{New: func() any {
	b := make([]byte, 0, 4096)
	return &b
}}

func getBuffer() *[]byte { return buffers.Get().(*[]byte) }

func putBuffer(b *[]byte) {
	if cap(*b) > maxPooledBuffer {
		return
	}
	*b = (*b)[:0]
	buffers.Put(b)
}
