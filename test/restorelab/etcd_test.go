package restorelab

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kubectl-dr/kubectl-dr/internal/etcdmember"

	"github.com/kubectl-dr/kubectl-dr/test/lab/labtest"
)

// Three kubeadm-style etcd members under the lab's kube-apiserver: a
// restore with one agent unreachable stops nothing; then the restore brings
// the API back with the snapshot's objects, the three members in one
// healthy cluster past the snapshot's revision, the old data dirs aside.
func TestEtcdRestoreThreeMembers(t *testing.T) {
	ns := "restore-e2e"
	kubectl(t, "create", "namespace", ns)
	for _, cm := range []string{"cm-a", "cm-b"} {
		kubectl(t, "-n", ns, "create", "configmap", cm, "--from-literal=v=1")
	}
	snap := labtest.SaveSnapshot(t, theLab, "before-restore")
	kubectl(t, "-n", ns, "delete", "configmap", "cm-a")
	kubectl(t, "-n", ns, "create", "configmap", "cm-c", "--from-literal=v=1")
	kubectl(t, "create", "namespace", "after-snapshot")

	t.Run("an unreachable agent stops nothing", func(t *testing.T) {
		if err := theLab.StopProcess("agent-server-3"); err != nil {
			t.Fatal(err)
		}
		defer func() {
			if err := theLab.Restart(t.Context()); err != nil {
				t.Fatalf("restart the agent: %v", err)
			}
		}()
		r := kubectlDR(t, "etcd", "restore", snap.Name, "--yes")
		if r.Code == 0 || !strings.Contains(r.Stderr, "server-3") || !strings.Contains(r.Stderr, "nothing was stopped") {
			t.Errorf("restore with server-3's agent down: exit %d\n%s\nwant a failure naming server-3, nothing stopped", r.Code, r.Stderr)
		}
		for _, n := range theLab.EtcdNodes() {
			if st := etcdmember.Status(t.Context(), theLab.EtcdClient(n)); !st.Healthy {
				t.Errorf("etcd on %s after the refused restore: %v", n, st.Err)
			}
		}
	})

	r := kubectlDR(t, "etcd", "restore", snap.Name, "--yes")
	t.Logf("kubectl dr etcd restore --yes:\n%s\n%s", r.Stderr, r.Stdout)
	if r.Code != 0 {
		t.Fatalf("restore: exit %d", r.Code)
	}
	for _, want := range []string{"stop done", "restore-data-dir done", "wait-healthy done", "RTO"} {
		if !strings.Contains(r.Stderr+r.Stdout, want) {
			t.Errorf("restore output lacks %q", want)
		}
	}

	// The API server serves the snapshot's objects (its caches relist
	// after the revision jump; give them a moment).
	deadline := time.Now().Add(90 * time.Second)
	for {
		got := strings.Fields(kubectl(t, "-n", ns, "get", "configmaps", "-o", "jsonpath={.items[*].metadata.name}"))
		nsr := runBin(t, theLab.Bin.Kubectl, "get", "namespace", "after-snapshot")
		if strings.Join(got, ",") == "cm-a,cm-b" && nsr.Code != 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after restore: configmaps %v (want cm-a,cm-b), namespace after-snapshot exit %d (want gone)", got, nsr.Code)
		}
		time.Sleep(2 * time.Second)
	}

	oneHealthyCluster(t)
	for _, n := range theLab.EtcdNodes() {
		st := etcdmember.Status(t.Context(), theLab.EtcdClient(n))
		if st.Revision <= snap.Revision {
			t.Errorf("etcd on %s at revision %d, want past the snapshot's %d (bumped)", n, st.Revision, snap.Revision)
		}
		aside, _ := filepath.Glob(filepath.Join(theLab.DataDir(n), "server", "db", "etcd.aside-restore-*"))
		if len(aside) != 1 {
			t.Errorf("%s: old data dirs aside %v, want one", n, aside)
		}
	}

	r = kubectlDR(t, "etcd", "restore", "--status")
	if r.Code != 0 || strings.Count(r.Stdout, " finished") != len(theLab.EtcdNodes()) {
		t.Errorf("restore --status: exit %d\n%s\nwant every member's plan finished", r.Code, r.Stdout)
	}
}

// A second restore while one runs is refused before anything else; the
// plugin killed in the middle of a restore (past the barrier: every member
// stopped) leaves the agents to finish, and --status shows every member's
// plan finished.
func TestEtcdRestoreOutlivesThePlugin(t *testing.T) {
	snap := labtest.SaveSnapshot(t, theLab, "plugin-killed")
	cmd := exec.Command(theLab.Bin.KubectlDR, "etcd", "restore", snap.Name, "--yes")
	cmd.Env = append(os.Environ(), theLab.Env()...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	// The first plugin's stderr, read to the end in the background.
	var mu sync.Mutex
	var seen []string
	stopping, restoring := make(chan struct{}), make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		var stopSeen, restoreSeen bool
		for sc.Scan() {
			mu.Lock()
			seen = append(seen, sc.Text())
			mu.Unlock()
			if strings.Contains(sc.Text(), "stop started") && !stopSeen {
				close(stopping)
				stopSeen = true
			}
			// Past the barrier: the members restore without the plugin.
			if strings.Contains(sc.Text(), "restore-data-dir started") && !restoreSeen {
				close(restoring)
				restoreSeen = true
			}
		}
	}()
	first := func() string {
		mu.Lock()
		defer mu.Unlock()
		return strings.Join(seen, "\n")
	}
	select {
	case <-stopping:
	case <-time.After(2 * time.Minute):
		t.Fatalf("the restore never started stopping members:\n%s", first())
	}

	// The API server hangs while etcd stops: the second restore reaches
	// the agents directly, as an operator does when the API is down (its
	// kubeconfig names a port nothing listens on).
	noAPI := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(noAPI, []byte("apiVersion: v1\nkind: Config\nclusters: [{name: down, cluster: {server: \"https://127.0.0.1:1\"}}]\ncontexts: [{name: down, context: {cluster: down}}]\ncurrent-context: down\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := labtest.Run(t, theLab, 5*time.Minute, theLab.Bin.KubectlDR, []string{"KUBECONFIG=" + noAPI}, "etcd", "restore", snap.Name, "--yes")
	if r.Code == 0 || !strings.Contains(r.Stderr, "another restore is in progress") {
		t.Errorf("a second restore during the first: exit %d\n%s\nwant it refused\nthe first restore printed:\n%s\nthe members' plans:\n%s",
			r.Code, r.Stderr, first(), plansOnNodes(t))
	}

	select {
	case <-restoring:
	case <-time.After(2 * time.Minute):
		t.Fatalf("the restore never got past the barrier:\n%s", first())
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()

	deadline := time.Now().Add(3 * time.Minute)
	for {
		r = kubectlDR(t, "etcd", "restore", "--status")
		if r.Code == 0 && strings.Count(r.Stdout, " finished") == len(theLab.EtcdNodes()) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("restore --status after the plugin was killed: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
		}
		time.Sleep(2 * time.Second)
	}
	if strings.Contains(r.Stdout, "FAILED") {
		t.Errorf("a step failed:\n%s", r.Stdout)
	}
	oneHealthyCluster(t)
}

// plansOnNodes lists every member's restore plans as their state files
// have them: id, started, each step's state and error.
func plansOnNodes(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	for _, n := range theLab.EtcdNodes() {
		files, _ := filepath.Glob(filepath.Join(theLab.NodeRoot(n), "var", "lib", "dr-agent", "restore", "plans", "*.json"))
		for _, f := range files {
			// The plan's state file, as docs/etcd.md describes it.
			var p struct {
				ID      string    `json:"id"`
				Created time.Time `json:"created"`
				Started bool      `json:"started"`
				Steps   []struct {
					Name, State, Error string
				} `json:"steps"`
			}
			data, err := os.ReadFile(f)
			if err == nil {
				err = json.Unmarshal(data, &p)
			}
			if err != nil {
				fmt.Fprintf(&b, "%s: %v\n", n, err)
				continue
			}
			fmt.Fprintf(&b, "%s: plan %s created %s started %v:", n, p.ID, p.Created.Format(time.RFC3339Nano), p.Started)
			for _, s := range p.Steps {
				fmt.Fprintf(&b, " %s=%s", s.Name, s.State)
				if s.Error != "" {
					fmt.Fprintf(&b, "(%s)", s.Error)
				}
			}
			b.WriteString("\n")
		}
	}
	return b.String()
}
