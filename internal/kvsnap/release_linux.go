package kvsnap

import (
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

var pageSize = uintptr(os.Getpagesize())

// release drops the whole memory pages inside v, a value in the
// read-only memory map, from this process: read once, they would
// otherwise stay resident and memory would grow with the size of the
// snapshot. The file's pages stay in the page cache and fault back in
// if read again; the map is read-only and shared, so nothing changes.
func release(v []byte) {
	if uintptr(len(v)) < 2*pageSize {
		return
	}
	start := uintptr(unsafe.Pointer(unsafe.SliceData(v)))
	off := (pageSize - start%pageSize) % pageSize
	n := (uintptr(len(v)) - off) / pageSize * pageSize
	if n == 0 {
		return
	}
	_ = unix.Madvise(v[off:off+n], unix.MADV_DONTNEED)
}
