package etcdrestore

import (
	"reflect"
	"strings"
	"testing"

	agentv1 "github.com/kubectl-dr/kubectl-dr/api/dr/agent/v1"
	"github.com/kubectl-dr/kubectl-dr/internal/store/dbsnap"
	"github.com/kubectl-dr/kubectl-dr/plugin/agentclient"
)

func server(name, ip string) *agentclient.Node {
	n := &agentclient.Node{Info: &agentv1.InfoResponse{Etcd: &agentv1.EtcdMemberHealth{
		Member: true, MemberName: name + "-abc", PeerUrls: []string{"https://" + ip + ":2380"}, ClientUrls: []string{"https://" + ip + ":2379"},
	}}}
	n.Node = name
	return n
}

// k3s: the chosen server resets and waits for the others' peers to go
// down; the others rejoin and wait on its client URL.
func TestPlanPartsK3s(t *testing.T) {
	servers := []*agentclient.Node{server("s1", "10.0.0.1"), server("s2", "10.0.0.2"), server("s3", "10.0.0.3")}
	snap := &dbsnap.Snapshot{Name: "snap-1", SHA256: "abc"}
	digests := map[string]string{"s1": "d1", "s2": "d2", "s3": "d3"}
	parts, err := planParts(servers, "k3s", "restore-1", "s2", snap, digests, false, false)
	if err != nil {
		t.Fatal(err)
	}
	roles := map[string]agentv1.RestoreRole{}
	for _, p := range parts {
		roles[p.Node] = p.Role
		if p.Flavor != agentv1.RestoreFlavor_RESTORE_FLAVOR_K3S || p.SnapshotSha256 != "abc" || p.Snapshot.GetName() != "snap-1" || p.PreviewDigest != digests[p.Node] || p.NoPreview {
			t.Errorf("part %s: %v", p.Node, p)
		}
		switch p.Node {
		case "s2":
			if want := []string{"https://10.0.0.1:2380", "https://10.0.0.3:2380"}; !reflect.DeepEqual(p.OtherPeerUrls, want) {
				t.Errorf("reset server waits on %v, want %v", p.OtherPeerUrls, want)
			}
		default:
			if want := []string{"https://10.0.0.2:2379"}; !reflect.DeepEqual(p.ResetClientUrls, want) || p.ResetServer != "s2" {
				t.Errorf("%s waits on %s %v, want s2 %v", p.Node, p.ResetServer, p.ResetClientUrls, want)
			}
		}
	}
	want := map[string]agentv1.RestoreRole{"s1": agentv1.RestoreRole_RESTORE_ROLE_REJOIN, "s2": agentv1.RestoreRole_RESTORE_ROLE_RESET, "s3": agentv1.RestoreRole_RESTORE_ROLE_REJOIN}
	if !reflect.DeepEqual(roles, want) {
		t.Errorf("roles %v, want %v", roles, want)
	}

	if _, err := planParts(servers, "k3s", "restore-1", "worker-1", snap, digests, false, false); err == nil || !strings.Contains(err.Error(), "worker-1 is not one of the servers") {
		t.Errorf("reset on a non-server: %v", err)
	}

	// A server the preview did not ask (it answered only at the restore):
	// nothing starts.
	if _, err := planParts(servers, "k3s", "restore-1", "s2", snap, map[string]string{"s1": "d1", "s2": "d2"}, false, false); err == nil || !strings.Contains(err.Error(), "nothing was stopped: server s3 was not part of the preview") {
		t.Errorf("a server left out of the preview: %v", err)
	}
	// An agent older than preview digests: its part says so.
	parts, err = planParts(servers, "k3s", "restore-1", "s2", snap, map[string]string{"s1": "d1", "s2": "d2", "s3": ""}, false, false)
	if err != nil || !parts[2].NoPreview || parts[2].PreviewDigest != "" {
		t.Errorf("an agent without digests: %v %v", parts, err)
	}
}

// etcd: every member restores with the same new cluster.
func TestPlanPartsEtcd(t *testing.T) {
	servers := []*agentclient.Node{server("s2", "10.0.0.2"), server("s1", "10.0.0.1")}
	parts, err := planParts(servers, "etcd", "restore-2", "s2", &dbsnap.Snapshot{Name: "snap-2"}, map[string]string{"s1": "d1", "s2": "d2"}, false, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range parts {
		if p.InitialCluster != "s1-abc=https://10.0.0.1:2380,s2-abc=https://10.0.0.2:2380" || p.InitialClusterToken != "restore-2" || p.MemberName != p.Node+"-abc" {
			t.Errorf("part %s: cluster %q token %q member %q", p.Node, p.InitialCluster, p.InitialClusterToken, p.MemberName)
		}
	}
}

// New hosts: nothing runs to preview or to wait for; the servers that
// join wait on the reset server's configured endpoint.
func TestPlanPartsK3sNewHosts(t *testing.T) {
	fresh := func(name, ip string) *agentclient.Node {
		n := &agentclient.Node{Info: &agentv1.InfoResponse{Etcd: &agentv1.EtcdMemberHealth{Endpoint: "https://" + ip + ":2379"}}}
		n.Node = name
		return n
	}
	servers := []*agentclient.Node{fresh("s1", "10.0.0.1"), fresh("s2", "10.0.0.2")}
	parts, err := planParts(servers, "k3s", "restore-3", "s1", &dbsnap.Snapshot{Name: "snap-3", SHA256: "abc"}, nil, true, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range parts {
		if !p.NewHost || !p.NoPreview || p.PreviewDigest != "" || len(p.OtherPeerUrls) != 0 {
			t.Errorf("part %s: %v", p.Node, p)
		}
	}
	if parts[1].Role != agentv1.RestoreRole_RESTORE_ROLE_REJOIN || !reflect.DeepEqual(parts[1].ResetClientUrls, []string{"https://10.0.0.1:2379"}) {
		t.Errorf("joining part: %v", parts[1])
	}
}
