package dbsnap

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"strings"
	"testing"

	"filippo.io/age"

	"github.com/kubectl-dr/kubectl-dr/internal/store/objstore"
)

// putBundle keeps files in the store as an agent does (encrypted to id's
// recipient) and returns the snapshot record naming them.
func putBundle(t *testing.T, store objstore.Store, id *age.X25519Identity, files map[string][]byte) *Snapshot {
	t.Helper()
	plain, err := json.Marshal(files)
	if err != nil {
		t.Fatal(err)
	}
	var enc bytes.Buffer
	w, err := age.Encrypt(&enc, id.Recipient())
	if err != nil {
		t.Fatal(err)
	}
	w.Write(plain)
	w.Close()
	key := BootstrapKey("n1", "s1")
	if _, err := store.Put(context.Background(), key, bytes.NewReader(enc.Bytes()), int64(enc.Len())); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(enc.Bytes())
	return &Snapshot{Name: "s1", Node: "n1", Bootstrap: &Bootstrap{StoreKey: key, StoredSHA: hex.EncodeToString(sum[:])}}
}

// A bundle decrypts only into the files k3s keeps: a crafted one (its
// checksum and encryption right, made by whoever holds the public key)
// naming any other path is refused whole, with the path in the error.
func TestFetchBootstrapRefusesPathsOutsideTheAllowList(t *testing.T) {
	store, err := objstore.Open(objstore.Config{URL: "file://" + t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	good := map[string][]byte{"server/token": []byte("K10abc::server:x"), "server/cred/encryption-config.json": []byte("{}")}
	files, err := FetchBootstrap(context.Background(), store, putBundle(t, store, id, good), id)
	if err != nil || len(files) != 2 {
		t.Fatalf("a bundle as an agent keeps it: %v, %v", files, err)
	}
	for _, bad := range []string{"../../../etc/cron.d/x", "/etc/shadow", "server/../../etc/passwd", "server/tls/server-ca.key", "./server/token", "server//token", "server/token/", "server\\token", ""} {
		bundle := map[string][]byte{"server/token": []byte("K10abc"), bad: []byte("* * * * * root id")}
		_, err := FetchBootstrap(context.Background(), store, putBundle(t, store, id, bundle), id)
		if !errors.Is(err, ErrBootstrapPath) || !strings.Contains(err.Error(), fmt.Sprintf("%q", bad)) || !strings.Contains(err.Error(), "nothing was written") {
			t.Errorf("bundle with %q: err = %v, want ErrBootstrapPath naming it", bad, err)
		}
	}
}

// Whatever a bundle names, a path that passes is one of BootstrapFiles:
// relative, clean, inside the data dir.
func FuzzCheckBootstrapPath(f *testing.F) {
	for _, s := range []string{"server/token", "server/cred/encryption-config.json", "../server/token", "/server/token", "server/./token", "server/cred/../token", "server/token\x00", "server/tls/client-ca.key"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, rel string) {
		if CheckBootstrapPath(rel) != nil {
			return
		}
		if path.IsAbs(rel) || path.Clean(rel) != rel || strings.HasPrefix(rel, "..") || strings.ContainsAny(rel, "\\\x00") || !strings.HasPrefix(rel, "server/") {
			t.Fatalf("%q passed", rel)
		}
		found := false
		for _, f := range BootstrapFiles() {
			found = found || f == rel
		}
		if !found {
			t.Fatalf("%q passed and is not a bootstrap file", rel)
		}
	})
}
