package oneserver

import (
	"archive/zip"
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kubectl-dr/kubectl-dr/internal/etcdmember"
	"github.com/kubectl-dr/kubectl-dr/test/lab/labtest"
)

// etcdctlSave runs the real `etcdctl snapshot save` against the member
// (the lab's environment names it and its certificates: ETCDCTL_*).
func etcdctlSave(t *testing.T, path string) {
	t.Helper()
	r := runBin(t, theLab.Bin.Etcdctl, nil, "snapshot", "save", path)
	if r.Code != 0 {
		t.Fatalf("etcdctl snapshot save: exit %d\n%s", r.Code, r.Stderr)
	}
}

// zipLikeK3s writes what k3s's --etcd-snapshot-compress makes of a
// snapshot: <entry>.zip holding one deflate entry named entry.
func zipLikeK3s(t *testing.T, snapshot, entry string) string {
	t.Helper()
	data, err := os.ReadFile(snapshot)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, err := zw.CreateHeader(&zip.FileHeader{Name: entry, Method: zip.Deflate})
	if err != nil {
		t.Fatal(err)
	}
	w.Write(data)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(filepath.Dir(snapshot), entry+".zip")
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// Snapshots made elsewhere come into the catalog through the plugin with
// the user's kubeconfig and restore like our own: an `etcdctl snapshot
// save` file and a k3s .zip, each imported and restored through kubectl dr
// etcd restore; a member's db (no trailer) refused without --no-hash and
// taken with it; a truncated file refused by import (nothing listed) and
// by dr-agent etcd restore --file before anything stops.
func TestImportedSnapshotsRestore(t *testing.T) {
	ns := "imported"
	kubectl(t, "create", "namespace", ns)
	kubectl(t, "-n", ns, "create", "configmap", "in-etcdctl-snap", "--from-literal=v=1")
	dir := t.TempDir()
	etcdctlFile := filepath.Join(dir, "etcdctl-before.db")
	etcdctlSave(t, etcdctlFile)
	kubectl(t, "-n", ns, "create", "configmap", "in-zip", "--from-literal=v=1")
	zipSrc := filepath.Join(dir, "zip-src.db")
	etcdctlSave(t, zipSrc)
	zipped := zipLikeK3s(t, zipSrc, "etcd-snapshot-"+theLab.EtcdNodes()[0]+"-1795285773")
	kubectl(t, "-n", ns, "create", "configmap", "after-both", "--from-literal=v=1")

	// A member's db as member/snap/db holds it: the database without the
	// trailer etcdctl adds.
	data, err := os.ReadFile(etcdctlFile)
	if err != nil {
		t.Fatal(err)
	}
	memberDB := filepath.Join(dir, "db")
	os.WriteFile(memberDB, data[:len(data)-32], 0o600)
	truncated := filepath.Join(dir, "truncated.db")
	os.WriteFile(truncated, data[:len(data)-8192], 0o600)

	r := kubectlDR(t, "etcd", "snapshot", "import", truncated)
	if r.Code != 1 || !strings.Contains(r.Stderr, "import refused, nothing was uploaded") || !strings.Contains(r.Stderr, "truncated or damaged") {
		t.Errorf("import of a truncated file: exit %d, want 1 and the refusal\n%s", r.Code, r.Stderr)
	}
	r = kubectlDR(t, "etcd", "snapshot", "import", memberDB, "--name", "member-db")
	if r.Code != 1 || !strings.Contains(r.Stderr, "give --no-hash") {
		t.Errorf("import of a member db without --no-hash: exit %d, want 1 and the hint\n%s", r.Code, r.Stderr)
	}
	r = kubectlDR(t, "etcd", "snapshot", "import", memberDB, "--name", "member-db", "--no-hash")
	if r.Code != 0 || !strings.Contains(r.Stdout, "imported bolt-db as member-db") {
		t.Errorf("import of a member db with --no-hash: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	for _, f := range []string{etcdctlFile, zipped} {
		if r := kubectlDR(t, "etcd", "snapshot", "import", f); r.Code != 0 {
			t.Fatalf("import %s: exit %d\n%s", filepath.Base(f), r.Code, r.Stderr)
		}
	}
	r = kubectlDR(t, "etcd", "snapshot", "ls")
	for _, name := range []string{"etcdctl-before.db", filepath.Base(strings.TrimSuffix(zipped, ".zip")), "member-db"} {
		if !strings.Contains(r.Stdout, name) {
			t.Errorf("snapshot ls lacks %s\n%s", name, r.Stdout)
		}
	}
	if strings.Contains(r.Stdout, "truncated") {
		t.Errorf("snapshot ls lists the refused truncated file\n%s", r.Stdout)
	}

	// dr-agent etcd restore --file: the .zip is previewed, the truncated
	// file refused while etcd keeps running.
	node := theLab.EtcdNodes()[0]
	agent := func(args ...string) labtest.Result {
		t.Helper()
		// The k3s steps need no peer URL; nothing here runs them.
		args = append([]string{"etcd", "restore", "--config", theLab.AgentConfigPath(node), "--flavor", "k3s"}, args...)
		r := runBin(t, theLab.Bin.DRAgent, nil, args...)
		t.Logf("dr-agent %s: exit %d\n%s%s", strings.Join(args, " "), r.Code, r.Stdout, r.Stderr)
		return r
	}
	if r := agent("--file", zipped); r.Code != 0 || !strings.Contains(r.Stdout, "k3s-zip, verified") || !strings.Contains(r.Stdout, "Nothing was changed") {
		t.Errorf("dr-agent etcd restore --file ZIP without --yes: exit %d, want the preview", r.Code)
	}
	if r := agent("--file", truncated, "--yes"); r.Code != 1 || !strings.Contains(r.Stderr, "truncated or damaged") || !strings.Contains(r.Stderr, "nothing was stopped") {
		t.Errorf("dr-agent etcd restore --file TRUNCATED --yes: exit %d, want 1 and nothing stopped", r.Code)
	}
	if st := etcdmember.Status(t.Context(), theLab.EtcdClient(node)); st.Err != nil {
		t.Fatalf("etcd does not answer after a refused restore: %v", st.Err)
	}

	for _, tc := range []struct{ name, want string }{
		{filepath.Base(strings.TrimSuffix(zipped, ".zip")), "in-zip"},
		{"etcdctl-before.db", ""},
	} {
		r := kubectlDR(t, "etcd", "restore", tc.name, "--yes")
		t.Logf("restore %s --yes:\n%s\n%s", tc.name, r.Stderr, r.Stdout)
		if r.Code != 0 {
			t.Fatalf("restore of the imported %s: exit %d", tc.name, r.Code)
		}
		want := []string{"in-etcdctl-snap"}
		if tc.want != "" {
			want = append(want, tc.want)
		} else {
			// The second restore's bumped revision (snapshot + 1e9) is
			// below what the first one left, so the API server's watch
			// cache does not see it go back: it relists after a restart.
			labtest.RestartAPIServer(t, theLab)
		}
		labtest.WaitConfigMaps(t, theLab, ns, want...)
	}
}
