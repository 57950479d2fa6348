package cmd_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	agentv1 "github.com/kubectl-dr/kubectl-dr/api/dr/agent/v1"
	"github.com/kubectl-dr/kubectl-dr/internal/agentconfig"
	"github.com/kubectl-dr/kubectl-dr/plugin/agentclient"
	"github.com/kubectl-dr/kubectl-dr/plugin/printers"
)

var (
	resticOnce sync.Once
	resticPath string
	resticErr  error
)

// TestMain removes the restic built for the tests that use one.
func TestMain(m *testing.M) {
	code := m.Run()
	if resticPath != "" {
		os.RemoveAll(filepath.Dir(resticPath))
	}
	os.Exit(code)
}

// resticBinary builds the restic the agent ships (the go.mod tool
// version) once per test binary.
func resticBinary(t *testing.T) string {
	t.Helper()
	resticOnce.Do(func() {
		dir, err := os.MkdirTemp("", "plugin-cmd-restic-")
		if err != nil {
			resticErr = err
			return
		}
		resticPath = filepath.Join(dir, "restic")
		if out, err := exec.Command("go", "build", "-o", resticPath, "github.com/restic/restic/cmd/restic").CombinedOutput(); err != nil {
			resticErr = fmt.Errorf("build restic: %v\n%s", err, out)
		}
	})
	if resticErr != nil {
		t.Fatal(resticErr)
	}
	return resticPath
}

// filesAgent serves the real agent for node with file backups of data on
// (the real restic, a repository in the env's file:// store); between runs
// after each PreviewFileRestore the agent answered, before the plugin sees
// the preview's end: what a user changing files between preview and
// restore does.
func (e *env) filesAgent(node, data string, between func()) {
	e.t.Helper()
	pw := filepath.Join(e.t.TempDir(), "restic-password")
	if err := os.WriteFile(pw, []byte("correct horse\n"), 0o600); err != nil {
		e.t.Fatal(err)
	}
	bin := resticBinary(e.t)
	afterPreview := func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		err := handler(srv, ss)
		if err == nil && between != nil && info.FullMethod == agentv1.AgentService_PreviewFileRestore_FullMethodName {
			between()
		}
		return err
	}
	e.agentWith(node, func(c *agentconfig.Config) {
		c.Restic = agentconfig.Restic{Binary: bin, PasswordFile: pw, Paths: []string{data}, CacheDir: filepath.Join(c.StateDir, "restic-cache")}
	}, grpc.ChainStreamInterceptor(afterPreview))
}

func writeFile(t *testing.T, p, body string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// backupAndEdit backs data up as set nightly through the plugin, then
// edits it: app.conf changed, gone.txt removed.
func backupAndEdit(t *testing.T, e *env, data string) {
	t.Helper()
	writeFile(t, filepath.Join(data, "app.conf"), "backed up\n")
	writeFile(t, filepath.Join(data, "sub", "gone.txt"), "gone\n")
	if r := e.run("backup", "create", "nightly", "--etcd=false"); r.code != 0 {
		t.Fatalf("backup create:\n%s", r)
	}
	writeFile(t, filepath.Join(data, "app.conf"), "edited\n")
	if err := os.Remove(filepath.Join(data, "sub", "gone.txt")); err != nil {
		t.Fatal(err)
	}
}

var digestCell = regexp.MustCompile(`sha256:[0-9a-f]{12}…`)

// The restore carries the digest of the preview it printed; the real
// agent, with nothing changed in between, restores the backup's bytes and
// keeps what it replaced.
func TestRestoreAppliesThePreviewItPrinted(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	data := t.TempDir()
	e.filesAgent("server-1", data, nil)
	backupAndEdit(t, e, data)

	r := e.run("restore", "nightly", "--dry-run", "-o", "json")
	var list printers.RestorePreviewList
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil || r.code != 0 || len(list.Items) != 1 {
		t.Fatalf("%v\n%s", err, r)
	}
	digest := list.Items[0].Digest
	if !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(digest) {
		t.Fatalf("-o json digest %q: want the full sha256", digest)
	}

	// A restore that names no preview (a script calling the agent) is
	// refused before anything is looked at.
	nodes, err := agentclient.Connect(context.Background(), (&testFactory{e}).AgentOptions(nil))
	if err != nil {
		t.Fatal(err)
	}
	defer nodes.Close()
	n, _ := nodes.Find("server-1")
	stream, err := n.Conn.RestoreFiles(context.Background(), &agentv1.RestoreFilesRequest{Target: &agentv1.FileRestoreTarget{BackupSet: "nightly"}})
	if err == nil {
		_, err = stream.Recv()
	}
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "the restore names no preview: preview it first and pass the preview's digest as preview_digest") {
		t.Errorf("a restore without a digest: %v", err)
	}
	if got := readFile(t, filepath.Join(data, "app.conf")); got != "edited\n" {
		t.Fatalf("app.conf = %q after a refused restore", got)
	}

	r = e.run("restore", "nightly", "--yes")
	if r.code != 0 {
		t.Fatal(r)
	}
	if cell := rows(t, r.stdout)["server-1"]; len(cell) == 0 || cell[len(cell)-1] != "sha256:"+digest[:12]+"…" {
		t.Errorf("preview row %q: want the digest sha256:%s… at its end\n%s", cell, digest[:12], r.stdout)
	}
	if !strings.Contains(r.stdout, "server-1: restored 2 file(s)") {
		t.Errorf("want the restore reported\n%s", r)
	}
	if got := readFile(t, filepath.Join(data, "app.conf")); got != "backed up\n" {
		t.Errorf("app.conf = %q after the restore", got)
	}
	if got := readFile(t, filepath.Join(data, "sub", "gone.txt")); got != "gone\n" {
		t.Errorf("gone.txt = %q after the restore", got)
	}
	m := regexp.MustCompile(`the files it replaced are in (\S+)`).FindStringSubmatch(r.stdout)
	if m == nil {
		t.Fatalf("no aside directory reported\n%s", r.stdout)
	}
	if got := readFile(t, filepath.Join(m[1], data, "app.conf")); got != "edited\n" {
		t.Errorf("the replaced app.conf is not kept aside: %q", got)
	}
}

// A file changed between the preview and the restore: the agent refuses,
// the plugin says which file and exits 1, and the file keeps its new
// content.
func TestRestoreRefusesFilesChangedAfterThePreview(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	data := t.TempDir()
	var once sync.Once
	e.filesAgent("server-1", data, func() {
		once.Do(func() {
			writeFile(t, filepath.Join(data, "app.conf"), "edited again, after the preview\n")
			writeFile(t, filepath.Join(data, "sub", "gone.txt"), "written after the preview\n")
		})
	})
	backupAndEdit(t, e, data)

	r := e.run("restore", "nightly", "--yes")
	if r.code != 1 {
		t.Fatalf("want exit 1\n%s", r)
	}
	if !strings.Contains(r.stdout, "server-1: restore FAILED: refused: changed since the preview on node server-1: ") ||
		!strings.Contains(r.stderr, "error: restore failed: server-1: refused: changed since the preview on node server-1: ") {
		t.Errorf("want the refusal on stdout and as the error\n%s", r)
	}
	for _, want := range []string{
		filepath.Join(data, "app.conf") + " (modified)",
		filepath.Join(data, "sub", "gone.txt") + " (new)",
		"nothing was moved or restored: run the restore again to see the new preview",
	} {
		if !strings.Contains(r.stdout, want) || !strings.Contains(r.stderr, want) {
			t.Errorf("stdout and stderr lack %q\n%s", want, r)
		}
	}
	if !digestCell.MatchString(r.stdout) {
		t.Errorf("the preview shows no digest\n%s", r.stdout)
	}
	if got := readFile(t, filepath.Join(data, "app.conf")); got != "edited again, after the preview\n" {
		t.Errorf("app.conf = %q after the refused restore", got)
	}
	if got := readFile(t, filepath.Join(data, "sub", "gone.txt")); got != "written after the preview\n" {
		t.Errorf("gone.txt = %q after the refused restore", got)
	}

	// Run again: the new preview is what the node holds, and it restores.
	r = e.run("restore", "nightly", "--yes")
	if r.code != 0 || !strings.Contains(r.stdout, "server-1: restored 2 file(s)") {
		t.Fatalf("the second restore:\n%s", r)
	}
	if got := readFile(t, filepath.Join(data, "app.conf")); got != "backed up\n" {
		t.Errorf("app.conf = %q after the second restore", got)
	}
}
