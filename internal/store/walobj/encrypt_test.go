package walobj

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"

	"github.com/kubectl-dr/kubectl-dr/internal/store/objstore"
)

// Test keys only: they encrypt nothing but these tests' objects.
const (
	testKey  = "AGE-SECRET-KEY-17W903F5HD6LR999XMHTKUM9VRE4JF7CATMWW436QHH0P8J085WZQHEVMQG"
	otherKey = "AGE-SECRET-KEY-14NFSCSPU9M0ETXTVZRLDG2ENL5QLDVMQNLCFKFQJW9FSTMT4A6NQDW785T"
)

func testIdentity(t testing.TB, key string) *age.X25519Identity {
	t.Helper()
	id, err := age.ParseX25519Identity(key)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func encryptingEncoder(t testing.TB) *Encoder {
	t.Helper()
	enc, err := NewEncoder(testIdentity(t, testKey).Recipient())
	if err != nil {
		t.Fatal(err)
	}
	return enc
}

// An encrypted object decodes with the key to the file shipped, whatever
// its size; its header carries the format marker and the same size and
// checksum as the clear object of the file; its body is not the file's
// compressed bytes.
func TestEncryptedRoundTrip(t *testing.T) {
	enc, clear := encryptingEncoder(t), newEncoder(t)
	id := testIdentity(t, testKey)
	raw := segment(t)
	for _, size := range []int{0, 1, frameSize, frameSize + 1, len(raw)} {
		var obj, plain bytes.Buffer
		if err := enc.Encode(&obj, raw[:size]); err != nil {
			t.Fatal(err)
		}
		if err := clear.Encode(&plain, raw[:size]); err != nil {
			t.Fatal(err)
		}
		header := ObjectHeader(obj.Bytes())
		if !strings.HasPrefix(header, "drwal3 ") || header[len("drwal3"):] != ObjectHeader(plain.Bytes())[len("drwal2"):] {
			t.Fatalf("%d bytes: header %q, want drwal3 with the clear object's size and checksum (%q)", size, header, ObjectHeader(plain.Bytes()))
		}
		_, body, _ := bytes.Cut(obj.Bytes(), []byte("\n"))
		if !bytes.HasPrefix(body, []byte("age-encryption.org/v1\n")) {
			t.Fatalf("%d bytes: body does not start as an age file: %q", size, body[:min(len(body), 40)])
		}
		var out bytes.Buffer
		if n, err := Decode(&out, bytes.NewReader(obj.Bytes()), id); err != nil || n != int64(size) || !bytes.Equal(out.Bytes(), raw[:size]) {
			t.Fatalf("%d bytes: decoded %d (equal %v): %v", size, n, bytes.Equal(out.Bytes(), raw[:size]), err)
		}
	}
	// The random half of the segment must not be readable in the object.
	var obj bytes.Buffer
	if err := enc.Encode(&obj, raw); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(obj.Bytes(), raw[100:164]) {
		t.Error("the object holds the file's bytes in clear")
	}
}

// Without the key, or with another, an encrypted object is refused with
// an error that says so (ErrKey, not ErrCorrupt) and nothing is written;
// a clear object still decodes with or without a key.
func TestEncryptedNeedsItsKey(t *testing.T) {
	raw := segment(t)[:3*frameSize]
	var obj bytes.Buffer
	if err := encryptingEncoder(t).Encode(&obj, raw); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		id   age.Identity
		want string
	}{
		{"no key", nil, "needs the snapshot key"},
		{"another key", testIdentity(t, otherKey), "another key than the snapshot key given"},
	} {
		var w countingWriter
		_, err := Decode(&w, bytes.NewReader(obj.Bytes()), tc.id)
		if !errors.Is(err, ErrKey) || errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), tc.want) || w.n != 0 {
			t.Errorf("%s: %v after %d bytes; want ErrKey saying %q, nothing written", tc.name, err, w.n, tc.want)
		}
	}
	var plain bytes.Buffer
	if err := newEncoder(t).Encode(&plain, raw); err != nil {
		t.Fatal(err)
	}
	for _, id := range []age.Identity{nil, testIdentity(t, testKey)} {
		var out bytes.Buffer
		if _, err := Decode(&out, bytes.NewReader(plain.Bytes()), id); err != nil || !bytes.Equal(out.Bytes(), raw) {
			t.Errorf("clear object with identity %v: %v", id != nil, err)
		}
	}
}

// A truncated or altered encrypted object is corrupt, and Fetch names the
// segment; the destination does not appear.
func TestEncryptedCorruptNamesTheSegment(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	store, err := objstore.Open(objstore.Config{URL: "file://" + filepath.Join(dir, "store")})
	if err != nil {
		t.Fatal(err)
	}
	id := testIdentity(t, testKey)
	raw := segment(t)
	var obj bytes.Buffer
	if err := encryptingEncoder(t).Encode(&obj, raw); err != nil {
		t.Fatal(err)
	}
	const name = "000000010000000000000007"
	header, _, _ := bytes.Cut(obj.Bytes(), []byte("\n"))
	flipped := bytes.Clone(obj.Bytes())
	flipped[len(flipped)*2/3] ^= 0x01
	wrongSum := append(append(bytes.Clone(header[:len(header)-16]), []byte("0123456789abcdef\n")...), obj.Bytes()[len(header)+1:]...)
	for _, tc := range []struct {
		name string
		obj  []byte
	}{
		{"truncated mid-body", obj.Bytes()[:obj.Len()/2]},
		{"truncated by one byte", obj.Bytes()[:obj.Len()-1]},
		{"truncated in the age header", obj.Bytes()[:len(header)+30]},
		{"one bit flipped", flipped},
		{"checksum in the header altered", wrongSum},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := store.Put(ctx, Key("pg", name), bytes.NewReader(tc.obj), int64(len(tc.obj))); err != nil {
				t.Fatal(err)
			}
			dest := filepath.Join(dir, "restored", name)
			os.MkdirAll(filepath.Dir(dest), 0o700)
			err := Fetch(ctx, store, "pg", name, dest, id)
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), name) {
				t.Fatalf("Fetch = %v, want ErrCorrupt naming %s", err, name)
			}
			if _, err := os.Stat(dest); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s appeared after a failed fetch (%v)", dest, err)
			}
		})
	}
}

// A file shipped again is recognised by its checksum whatever the format
// on either side: an encrypted object against the same file encrypted
// again (other bytes: a fresh file key), against a clear object, and a
// clear one against an encrypted one; another file is not the same.
func TestSameFileAcrossFormats(t *testing.T) {
	ctx := context.Background()
	store, err := objstore.Open(objstore.Config{URL: "file://" + t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	raw := segment(t)[:frameSize+5]
	other := bytes.Clone(raw)
	other[7] ^= 1
	encs := map[string]*Encoder{"encrypted": encryptingEncoder(t), "clear": newEncoder(t)}
	for stored, se := range encs {
		var obj bytes.Buffer
		if err := se.Encode(&obj, raw); err != nil {
			t.Fatal(err)
		}
		key := "wal/pg/00000001/" + stored
		if _, err := store.Put(ctx, key, bytes.NewReader(obj.Bytes()), int64(obj.Len())); err != nil {
			t.Fatal(err)
		}
		for shipped, ne := range encs {
			for _, tc := range []struct {
				file []byte
				want bool
			}{{raw, true}, {other, false}} {
				var again bytes.Buffer
				if err := ne.Encode(&again, tc.file); err != nil {
					t.Fatal(err)
				}
				if stored == "encrypted" && shipped == "encrypted" && tc.want && bytes.Equal(again.Bytes(), obj.Bytes()) {
					t.Fatal("two encryptions of one file are the same bytes")
				}
				got, err := SameFile(ctx, store, key, ObjectHeader(again.Bytes()), tc.file)
				if err != nil || got != tc.want {
					t.Errorf("stored %s, shipped %s, same file %v: SameFile = %v, %v", stored, shipped, tc.want, got, err)
				}
			}
		}
	}
}
