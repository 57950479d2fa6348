package printers

import (
	"strconv"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/kubectl-dr/kubectl-dr/internal/buildinfo"
)

// AgentStatus is one node's row of `kubectl dr status`.
type AgentStatus struct {
	Node          string   `json:"node"`
	Via           string   `json:"via,omitempty"`
	Reachable     bool     `json:"reachable"`
	Error         string   `json:"error,omitempty"`
	Roles         []string `json:"roles,omitempty"`
	AgentVersion  string   `json:"agentVersion,omitempty"`
	ResticVersion string   `json:"resticVersion,omitempty"`
	DataDir       string   `json:"dataDir,omitempty"`
	ClusterID     string   `json:"clusterID,omitempty"`
	Store         string   `json:"store,omitempty"`
	// SnapshotEncryption is "age", or "none" on an etcd member that uploads
	// snapshots in the clear.
	SnapshotEncryption string      `json:"snapshotEncryption,omitempty"`
	Etcd               *EtcdHealth `json:"etcd,omitempty"`
}

// EtcdHealth is the node's etcd member as its agent sees it.
type EtcdHealth struct {
	Healthy   bool   `json:"healthy"`
	Leader    bool   `json:"leader"`
	MemberID  string `json:"memberID,omitempty"`
	Name      string `json:"name,omitempty"`
	Endpoint  string `json:"endpoint,omitempty"`
	Version   string `json:"version,omitempty"`
	DBSize    int64  `json:"dbSizeBytes,omitempty"`
	Revision  int64  `json:"revision,omitempty"`
	ClusterID string `json:"clusterID,omitempty"`
	Error     string `json:"error,omitempty"`
}

// AgentStatusList is the output of `kubectl dr status`.
type AgentStatusList struct {
	metav1.TypeMeta `json:",inline"`
	Items           []AgentStatus `json:"items"`
}

// NewAgentStatusList returns an empty list with its kind set.
func NewAgentStatusList() *AgentStatusList {
	return &AgentStatusList{TypeMeta: metav1.TypeMeta{APIVersion: APIVersion, Kind: "AgentStatusList"}}
}

// DeepCopyObject implements runtime.Object.
func (l *AgentStatusList) DeepCopyObject() runtime.Object { return deepCopyJSON(l) }

// Columns implements TableView.
func (l *AgentStatusList) Columns(wide bool) []string {
	cols := []string{"NODE", "STATUS", "ROLES", "ETCD", "LEADER", "REVISION", "AGENT", "RESTIC"}
	if wide {
		cols = append(cols, "DB SIZE", "MEMBER", "ENCRYPTION", "VIA", "MESSAGE")
	}
	return cols
}

// Rows implements TableView.
func (l *AgentStatusList) Rows(wide bool) [][]string {
	var rows [][]string
	for _, s := range l.Items {
		status := "Ready"
		if !s.Reachable {
			status = "Unreachable"
		}
		etcd, leader, rev, size, member, msg := "-", "-", "-", "-", "-", s.Error
		if e := s.Etcd; e != nil {
			etcd = "unhealthy"
			if e.Healthy {
				etcd = "healthy"
			}
			leader = strconv.FormatBool(e.Leader)
			if e.Revision > 0 {
				rev = strconv.FormatInt(e.Revision, 10)
			}
			if e.DBSize > 0 {
				size = HumanBytes(e.DBSize)
			}
			if e.MemberID != "" {
				member = e.MemberID
			}
			if msg == "" {
				msg = e.Error
			}
		}
		row := []string{s.Node, status, orDash(strings.Join(s.Roles, ",")), etcd, leader, rev, orDash(s.AgentVersion), orDash(s.ResticVersion)}
		if wide {
			row = append(row, size, member, orDash(s.SnapshotEncryption), orDash(s.Via), msg)
		}
		rows = append(rows, row)
	}
	return rows
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// Version is the output of `kubectl dr version`.
type Version struct {
	metav1.TypeMeta `json:",inline"`
	Info            buildinfo.Info `json:"client"`
}
