package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// relTree is hashTree keyed by the path below dir.
func relTree(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for p, sum := range hashTree(t, dir) {
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			t.Fatal(err)
		}
		out[rel] = sum
	}
	return out
}

func hostPathPV(name, dir, ns string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: PersistentVolume
metadata: {name: %s}
spec:
  capacity: {storage: 1Gi}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: manual
  hostPath: {path: %s}
  claimRef: {namespace: %s, name: data}
`, name, dir, ns)
}

// The proof of --with-data: a claim with data, a backup set,
// the namespace and the files deleted; objects restore --with-data brings
// the objects back and the files, byte-identical, into the volume the
// restored claim binds to (a new disk, not the old path); with a mapping,
// into the copy's volume.
func TestObjectsRestoreWithData(t *testing.T) {
	const ns, copyNS, set = "objdata-e2e", "objdata-e2e-copy", "objdata-e2e"
	storage := filepath.Join(theLab.DataDir("server-1"), "storage")
	dirA, dirB, dirC := filepath.Join(storage, "objdata-a"), filepath.Join(storage, "objdata-b"), filepath.Join(storage, "objdata-c")
	writeTree(t, dirA, 150, 1, 23)
	before := relTree(t, dirA)
	t.Cleanup(func() {
		runBin(t, theLab.Bin.Kubectl, nil, "delete", "namespace", ns, copyNS, "--ignore-not-found", "--wait=false")
		runBin(t, theLab.Bin.Kubectl, nil, "delete", "pv", "objdata-a", "objdata-b", "objdata-c", "--ignore-not-found", "--wait=false")
		kubectlDR(t, nil, "backup", "rm", set)
		for _, d := range []string{dirA, dirB, dirC} {
			os.RemoveAll(d)
		}
	})
	applyManifest(t, hostPathPV("objdata-a", dirA, ns))
	applyManifest(t, fmt.Sprintf(`apiVersion: v1
kind: Namespace
metadata: {name: %[1]s}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings, namespace: %[1]s}
data: {color: blue}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data, namespace: %[1]s}
spec:
  accessModes: [ReadWriteOnce]
  storageClassName: manual
  resources: {requests: {storage: 1Gi}}
`, ns))
	runKubectl(t, "-n", ns, "wait", "--for=jsonpath={.status.phase}=Bound", "pvc/data", "--timeout=60s")

	r := kubectlDR(t, nil, "backup", "create", set, "--node", "server-1")
	if r.code != 0 {
		t.Fatalf("backup create: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	described := describeSet(t, set)
	if p, _ := described.Part("server-1"); !strings.Contains(strings.Join(p.PVCs, ","), ns+"/data") {
		t.Fatalf("server-1's part names PVCs %v, want %s/data", p.PVCs, ns)
	}

	r = kubectlDR(t, nil, "objects", "restore", "--latest", "-n", ns, "--with-data", "--yes")
	if r.code != 2 || !strings.Contains(r.stderr, "--with-data needs --backup ID") {
		t.Errorf("--with-data without --backup: exit %d\n%s\nwant 2 asking for --backup", r.code, r.stderr)
	}

	// The disaster: the namespace, its volume and its files are gone. A
	// new disk is made ready for the claim (as an admin does with static
	// volumes).
	runKubectl(t, "delete", "namespace", ns, "--wait=true", "--timeout=120s")
	runKubectl(t, "delete", "pv", "objdata-a", "--wait=true", "--timeout=60s")
	if err := os.RemoveAll(dirA); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dirB, 0o755); err != nil {
		t.Fatal(err)
	}
	applyManifest(t, hostPathPV("objdata-b", dirB, ns))

	r = kubectlDR(t, nil, "objects", "restore", "--backup", set, "-n", ns, "--with-data", "--yes")
	if r.code != 0 {
		t.Fatalf("objects restore --with-data: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	if got := liveObject(t, ns, "configmap", "settings")["data"].(map[string]any)["color"]; got != "blue" {
		t.Errorf("configmap settings color %v after the restore, want blue", got)
	}
	if want := fmt.Sprintf("server-1 %s/data: restored %d file(s)", ns, len(before)); !strings.Contains(r.stdout, want) {
		t.Errorf("no line %q in:\n%s", want, r.stdout)
	}
	after := relTree(t, dirB)
	if len(after) != len(before) {
		t.Errorf("the new volume holds %d files, the claim had %d", len(after), len(before))
	}
	for p, sum := range before {
		if after[p] != sum {
			t.Fatalf("%s in the new volume: sha256 %q, %q before the backup", p, after[p], sum)
		}
	}
	if _, err := os.Stat(dirA); !os.IsNotExist(err) {
		t.Errorf("the old volume's path %s was written to: %v", dirA, err)
	}

	// A copy beside it: the files go into the copy's volume.
	if err := os.MkdirAll(dirC, 0o755); err != nil {
		t.Fatal(err)
	}
	applyManifest(t, hostPathPV("objdata-c", dirC, copyNS))
	r = kubectlDR(t, nil, "objects", "restore", "--backup", set, "-n", ns, "--namespace-mapping", ns+":"+copyNS, "--with-data", "--yes")
	if r.code != 0 {
		t.Fatalf("objects restore --namespace-mapping --with-data: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	copied := relTree(t, dirC)
	for p, sum := range before {
		if copied[p] != sum {
			t.Fatalf("%s in the copy's volume: sha256 %q, %q before the backup", p, copied[p], sum)
		}
	}
}
