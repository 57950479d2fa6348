package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	agentv1 "github.com/kubectl-dr/kubectl-dr/api/dr/agent/v1"
	"github.com/kubectl-dr/kubectl-dr/plugin/agentclient"
	"github.com/kubectl-dr/kubectl-dr/plugin/printers"
)

// After kubectl dr install the agents hold only the snapshot key's public
// recipient: nothing the agent pods mount (read through the API) holds an
// AGE-SECRET-KEY, a snapshot the installed agent takes is still
// encrypted, a request straight to that agent that must decrypt is
// refused saying what to do, and the same through kubectl dr, which
// brings the key from Secret dr-snapshot-key, works.
func TestSnapshotKeyStaysOffTheNodes(t *testing.T) {
	node := theLab.State.KubeNode
	var pods corev1.PodList
	if err := json.Unmarshal([]byte(runKubectl(t, "-n", "dr-system", "get", "pods", "-l", "app.kubernetes.io/name=dr-agent", "-o", "json")), &pods); err != nil {
		t.Fatal(err)
	}
	if len(pods.Items) == 0 {
		t.Fatal("no agent pod in dr-system")
	}
	var ds struct {
		Spec struct {
			Template corev1.PodTemplateSpec `json:"template"`
		} `json:"spec"`
	}
	if err := json.Unmarshal([]byte(runKubectl(t, "-n", "dr-system", "get", "daemonset", "dr-agent", "-o", "json")), &ds); err != nil {
		t.Fatal(err)
	}
	specs := map[string]corev1.PodSpec{"daemonset dr-agent": ds.Spec.Template.Spec}
	for _, p := range pods.Items {
		specs["pod "+p.Name] = p.Spec
	}
	for who, spec := range specs {
		secrets := map[string]bool{}
		for _, v := range spec.Volumes {
			var secretNames, configMaps []string
			switch {
			case v.Secret != nil:
				secretNames = append(secretNames, v.Secret.SecretName)
			case v.ConfigMap != nil:
				configMaps = append(configMaps, v.ConfigMap.Name)
			case v.Projected != nil:
				// The service account's token volume: its token, the
				// cluster CA's ConfigMap, the namespace.
				for _, src := range v.Projected.Sources {
					if src.Secret != nil {
						secretNames = append(secretNames, src.Secret.Name)
					}
					if src.ConfigMap != nil {
						configMaps = append(configMaps, src.ConfigMap.Name)
					}
				}
			case v.HostPath != nil, v.EmptyDir != nil:
			default:
				t.Errorf("%s: volume %s is of a kind this test does not read", who, v.Name)
			}
			data := map[string]string{}
			for _, name := range secretNames {
				secrets[name] = true
				out := runBin(t, theLab.Bin.Kubectl, nil, "-n", "dr-system", "get", "secret", name, "-o", "json")
				if out.code != 0 {
					continue // an optional Secret install did not make
				}
				var s corev1.Secret
				if err := json.Unmarshal([]byte(out.stdout), &s); err != nil {
					t.Fatal(err)
				}
				for k, b := range s.Data {
					data["Secret "+name+" "+k] = string(b)
				}
			}
			for _, name := range configMaps {
				var cm corev1.ConfigMap
				if err := json.Unmarshal([]byte(runKubectl(t, "-n", "dr-system", "get", "configmap", name, "-o", "json")), &cm); err != nil {
					t.Fatal(err)
				}
				for k, val := range cm.Data {
					data["ConfigMap "+name+" "+k] = val
				}
			}
			for k, val := range data {
				if strings.Contains(val, "AGE-SECRET-KEY") {
					t.Errorf("%s mounts volume %s: %s holds the private snapshot key", who, v.Name, k)
				}
				if strings.Contains(val, "snapshotKeyFile") {
					t.Errorf("%s: volume %s: %s still names etcd.snapshotKeyFile", who, v.Name, k)
				}
			}
		}
		if secrets["dr-snapshot-key"] || !secrets["dr-snapshot-recipient"] {
			t.Errorf("%s mounts Secrets %v: want dr-snapshot-recipient, never dr-snapshot-key", who, secrets)
		}
	}

	r := kubectlDR(t, nil, "etcd", "snapshot", "save", "--node", node, "--name", "keys-e2e", "-o", "json")
	if r.code != 0 {
		t.Fatalf("snapshot save on %s: exit %d\n%s", node, r.code, r.stderr)
	}
	snap := snapshotJSON(t, r)
	if snap.Node != node || snap.Encryption != "age" {
		t.Errorf("snapshot %s: node %s, encryption %q; want taken on %s, encrypted with age", snap.Name, snap.Node, snap.Encryption, node)
	}
	if stored := storeObject(t, "lab/"+theLab.State.ClusterID+"/"+snap.StoreKey); !bytes.HasPrefix(stored, []byte("age-encryption.org/v1\n")) {
		t.Errorf("the stored object %s is not an age file: %q...", snap.StoreKey, stored[:min(len(stored), 32)])
	}

	// Straight to the agent, without the key: refused, nothing prepared.
	const want = "this restore needs the snapshot key: run it through kubectl dr, or give dr-agent etcd restore --snapshot-key-file"
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	agent := agentv1.NewAgentServiceClient(dialAgent(t, theLab.AgentAddr(node)))
	stream, err := agent.PreviewEtcdRestore(ctx, &agentv1.PreviewEtcdRestoreRequest{Snapshot: &agentv1.SnapshotRef{Name: snap.Name}})
	for err == nil {
		_, err = stream.Recv()
	}
	if agentclient.Reason(err) != agentv1.ReasonSnapshotKeyNeeded || !strings.Contains(err.Error(), want) {
		t.Errorf("preview without the key: %v; want reason %s saying %q", err, agentv1.ReasonSnapshotKeyNeeded, want)
	}
	info, err := agent.Info(ctx, &agentv1.InfoRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if info.GetRestoreFlavor() != "k3s" {
		t.Fatalf("the installed agent restores the %q way; this test asks for a k3s part", info.GetRestoreFlavor())
	}
	// A new host's rejoining part: it needs the bootstrap files (the
	// server token), encrypted to the snapshot key.
	_, err = agent.PrepareRestorePlan(ctx, &agentv1.PrepareRestorePlanRequest{Part: &agentv1.RestorePlanPart{
		PlanId: "keys-e2e-nokey", Node: node, NoPreview: true, Snapshot: &agentv1.SnapshotRef{Name: snap.Name},
		Role: agentv1.RestoreRole_RESTORE_ROLE_REJOIN, Flavor: agentv1.RestoreFlavor_RESTORE_FLAVOR_K3S, NewHost: true,
		ResetClientUrls: []string{"https://127.0.0.1:1"},
	}})
	if agentclient.Reason(err) != agentv1.ReasonSnapshotKeyNeeded || !strings.Contains(err.Error(), want) {
		t.Errorf("prepare without the key: %v; want reason %s saying %q", err, agentv1.ReasonSnapshotKeyNeeded, want)
	}
	if st, err := agent.RestorePlanStatus(ctx, &agentv1.RestorePlanStatusRequest{PlanId: "keys-e2e-nokey"}); err != nil || st.GetPlanId() != "" {
		t.Errorf("the refused plan is on %s: %+v %v", node, st, err)
	}

	// Through kubectl dr, as a user runs it: the key comes with the request.
	r = kubectlDR(t, nil, "etcd", "restore", snap.Name, "--dry-run", "-o", "json")
	if r.code != 0 {
		t.Fatalf("restore --dry-run through kubectl dr: exit %d\n%s", r.code, r.stderr)
	}
	var view printers.EtcdRestorePreview
	if err := json.Unmarshal([]byte(r.stdout), &view); err != nil {
		t.Fatalf("preview JSON: %v\n%s", err, r.stdout)
	}
	if view.Snapshot.Name != snap.Name || view.Digests[node] == "" || len(view.Items) == 0 {
		t.Errorf("preview of %s: snapshot %s, digests %v, %d rows; want %s's digest and the rows", snap.Name, view.Snapshot.Name, view.Digests, len(view.Items), node)
	}
}
