package restic

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A repository missing a pack: check reports each problem restic found,
// not only their count.
func TestCheckNamesWhatItFound(t *testing.T) {
	dir, bin, pw := resticBinary(t)
	src := filepath.Join(dir, "src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "a"), []byte(strings.Repeat("data ", 1000)), 0o644); err != nil {
		t.Fatal(err)
	}
	r := &Repo{Binary: bin, Repository: filepath.Join(dir, "repo"), PasswordFile: pw, CacheDir: filepath.Join(dir, "cache")}
	ctx := context.Background()
	if err := r.Init(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Backup(ctx, BackupOptions{Paths: []string{src}, Host: "n1"}, nil); err != nil {
		t.Fatal(err)
	}
	res, err := r.Check(ctx, "")
	if err != nil || res.Errors != 0 {
		t.Fatalf("check of a sound repository: %+v, %v", res, err)
	}
	packs, _ := filepath.Glob(filepath.Join(dir, "repo", "data", "*", "*"))
	if len(packs) == 0 {
		t.Fatal("no pack files")
	}
	for _, p := range packs {
		os.Remove(p)
	}
	res, err = r.Check(ctx, "")
	if err != nil {
		t.Fatalf("check of a damaged repository: %v", err)
	}
	if res.Errors == 0 || len(res.Messages) == 0 {
		t.Fatalf("check of a repository without its packs: %d errors, messages %q; want the problems named", res.Errors, res.Messages)
	}
	t.Logf("check found: %q", res.Messages)
}

// A repository locked by another restic: check says the repository is
// locked (so the caller can wait, or remove a stale lock) instead of
// reporting the lock as a problem found in the repository. Once the other
// process is gone, unlock removes its lock and check passes.
func TestCheckOfALockedRepositoryIsLocked(t *testing.T) {
	dir, bin, pw := resticBinary(t)
	repo := filepath.Join(dir, "repo")
	r := &Repo{Binary: bin, Repository: repo, PasswordFile: pw, CacheDir: filepath.Join(dir, "cache")}
	ctx := context.Background()
	if err := r.Init(ctx); err != nil {
		t.Fatal(err)
	}
	// A backup from a stdin that never ends holds its lock until killed.
	holder := exec.Command(bin, "backup", "--stdin", "--stdin-filename", "x", "--no-cache")
	holder.Env = append(os.Environ(), "RESTIC_REPOSITORY="+repo, "RESTIC_PASSWORD_FILE="+pw)
	stdin, err := holder.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	defer holder.Process.Kill()
	for i := 0; ; i++ {
		locks, _ := filepath.Glob(filepath.Join(repo, "locks", "*"))
		if len(locks) > 0 {
			break
		}
		if i == 300 {
			t.Fatal("the holding backup took no lock within 30s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if _, err := r.Check(ctx, ""); !errors.Is(err, ErrLocked) {
		t.Fatalf("check while another restic holds the lock: err = %v, want ErrLocked", err)
	}
	// Killed: its lock stays behind, stale (its process is gone).
	holder.Process.Kill()
	holder.Wait()
	if err := r.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	if res, err := r.Check(ctx, ""); err != nil || res.Errors != 0 {
		t.Fatalf("check after unlock removed the dead process's lock: %+v, %v", res, err)
	}
}

// resticBinary builds the restic go.mod pins into a new directory, with a
// repository password file beside it.
func resticBinary(t *testing.T) (dir, bin, pw string) {
	t.Helper()
	dir = t.TempDir()
	bin = filepath.Join(dir, "restic")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/restic/restic/cmd/restic").CombinedOutput(); err != nil {
		t.Fatalf("build restic: %v\n%s", err, out)
	}
	pw = filepath.Join(dir, "password")
	if err := os.WriteFile(pw, []byte("secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir, bin, pw
}

// A file restic cannot open (/proc/1/mem bound over it: not even root
// may): restic exits 3 with a snapshot, and the warnings name the file.
func TestBackupNamesTheFilesItCouldNotRead(t *testing.T) {
	dir, bin, pw := resticBinary(t)
	src := filepath.Join(dir, "src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(src, "ok"), []byte("readable"), 0o644)
	bad := filepath.Join(src, "unreadable")
	if err := os.WriteFile(bad, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "--bind", "/proc/1/mem", bad).CombinedOutput(); err != nil {
		t.Skipf("cannot bind-mount an unreadable file here (%v: %s)", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", bad).Run() })
	r := &Repo{Binary: bin, Repository: filepath.Join(dir, "repo"), PasswordFile: pw, CacheDir: filepath.Join(dir, "cache")}
	ctx := context.Background()
	if err := r.Init(ctx); err != nil {
		t.Fatal(err)
	}
	sum, err := r.Backup(ctx, BackupOptions{Paths: []string{src}, Host: "n1"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if sum.SnapshotID == "" || len(sum.Warnings) != 1 || !strings.Contains(sum.Warnings[0], bad) {
		t.Errorf("backup summary: snapshot %q, warnings %q; want a snapshot and one warning naming %s", sum.SnapshotID, sum.Warnings, bad)
	}
}
