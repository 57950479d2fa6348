package restic

import "testing"

// restic's stderr is a tool's output: turning it into a message must never
// panic, whatever restic (or whatever wrapper sits in its place) prints.
func FuzzStderrMessage(f *testing.F) {
	f.Add([]byte(`{"message_type":"exit_error","code":10,"message":"Fatal: repository does not exist"}` + "\n"))
	f.Add([]byte("Fatal: wrong password or no key found\n"))
	f.Add([]byte(`{"message_type":"error","error":{"message":"x"}}` + "\n\n\n"))
	f.Fuzz(func(t *testing.T, stderr []byte) {
		var tb tailBuffer
		tb.Write(stderr)
		_ = tb.message()
		_ = tb.errors()
	})
}
