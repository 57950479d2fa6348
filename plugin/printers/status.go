package printers

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/duration"

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
	SnapshotEncryption string `json:"snapshotEncryption,omitempty"`
	// Certificate is what the agent proved itself with: "node" (a
	// certificate naming its node) or "bootstrap" (the one every agent
	// shares until enrolled; it gets no snapshot key).
	Certificate string      `json:"certificate,omitempty"`
	Etcd        *EtcdHealth `json:"etcd,omitempty"`
}

// Certificates an agent proves itself with (AgentStatus.Certificate).
const (
	CertificateNode      = "node"
	CertificateBootstrap = "bootstrap"
)

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

// AgentStatusList is the output of `kubectl dr status`: the nodes, then
// the recovery point of each layer.
type AgentStatusList struct {
	metav1.TypeMeta `json:",inline"`
	Items           []AgentStatus `json:"items"`
	// Layers are one entry per node and layer; the etcd layer (the
	// cluster's snapshots) once, on its leader's node.
	Layers []LayerStatus `json:"layers"`
}

// Layer states.
const (
	LayerOK     = "ok"
	LayerMissed = "missed"
	LayerOff    = "off"
	// LayerUnknown: the newest point could not be read.
	LayerUnknown = "unknown"
	// DrillPassed and DrillFailed are the drills row's states: how the
	// newest drill ended.
	DrillPassed = "passed"
	DrillFailed = "failed"
)

// LayerStatus is one layer's recovery point on one node.
type LayerStatus struct {
	Node string `json:"node"`
	// Layer is etcd, files, wal, buckets, or drills (the newest drill
	// report in the store, on a row of its own with node "cluster").
	Layer string `json:"layer"`
	// Name is the WAL source's.
	Name string `json:"name,omitempty"`
	// State is ok, missed (newer than the target or none at all), off
	// (the layer is off, or no target is set) or unknown (could not read).
	State string `json:"state"`
	// Off says why the layer is off.
	Off string `json:"off,omitempty"`
	// Newest is the newest restorable point, NewestName what it is
	// (snapshot name, restic id, WAL segment); AgeSeconds its age when
	// status ran.
	Newest     *metav1.Time `json:"newest,omitempty"`
	NewestName string       `json:"newestName,omitempty"`
	AgeSeconds *int64       `json:"ageSeconds,omitempty"`
	// RPOTargetSeconds is the layer's rpoTarget; 0: none.
	RPOTargetSeconds  int64        `json:"rpoTargetSeconds,omitempty"`
	LastFailure       *metav1.Time `json:"lastFailure,omitempty"`
	LastFailureReason string       `json:"lastFailureReason,omitempty"`
	NextRun           *metav1.Time `json:"nextRun,omitempty"`
	Schedule          string       `json:"schedule,omitempty"`
	Error             string       `json:"error,omitempty"`
	// now is when status ran, for the relative times of the table.
	now time.Time
}

// SetNow fixes the time the table's ages and "in 4h" are counted from.
func (l *LayerStatus) SetNow(t time.Time) { l.now = t }

// Label is "etcd", "files" or "wal/NAME".
func (l *LayerStatus) Label() string {
	if l.Name != "" {
		return l.Layer + "/" + l.Name
	}
	return l.Layer
}

// Missed is the line status prints on stderr for a missed target, empty
// when the target is met.
func (l *LayerStatus) Missed() string {
	if l.State != LayerMissed {
		return ""
	}
	target := HumanDuration(time.Duration(l.RPOTargetSeconds) * time.Second)
	what := map[string]string{"etcd": "snapshot", "files": "file backup", "wal": "WAL file"}[l.Layer]
	if what == "" {
		what = "point"
	}
	if l.AgeSeconds == nil {
		return fmt.Sprintf("%s %s: no %s yet, target %s", l.Node, l.Label(), what, target)
	}
	return fmt.Sprintf("%s %s: newest %s %s ago, target %s", l.Node, l.Label(), what, HumanDuration(time.Duration(*l.AgeSeconds)*time.Second), target)
}

// HumanDuration is kubectl's short duration (5m, 13h, 3d).
func HumanDuration(d time.Duration) string { return duration.HumanDuration(d) }

// NewAgentStatusList returns an empty list with its kind set.
func NewAgentStatusList() *AgentStatusList {
	return &AgentStatusList{TypeMeta: metav1.TypeMeta{APIVersion: APIVersion, Kind: "AgentStatusList"}, Layers: []LayerStatus{}}
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
	// The layers follow as a table of their own: an empty line ends the
	// nodes' column block.
	if len(l.Layers) > 0 {
		rows = append(rows, nil, l.layerColumns(wide))
		rows = append(rows, l.layerRows(wide)...)
	}
	return rows
}

func (l *AgentStatusList) layerColumns(wide bool) []string {
	cols := []string{"NODE", "LAYER", "STATE", "AGE", "TARGET", "NEXT RUN", "LAST FAILURE"}
	if wide {
		cols = append(cols, "NEWEST", "NEWEST TIME", "SCHEDULE", "MESSAGE")
	}
	return cols
}

func (l *AgentStatusList) layerRows(wide bool) [][]string {
	var rows [][]string
	for _, s := range l.Layers {
		now := s.now
		if now.IsZero() {
			now = time.Now()
		}
		age, target, next, failed := "-", "-", "-", "-"
		if s.AgeSeconds != nil {
			age = HumanDuration(time.Duration(*s.AgeSeconds) * time.Second)
		}
		if s.RPOTargetSeconds > 0 {
			target = HumanDuration(time.Duration(s.RPOTargetSeconds) * time.Second)
		}
		if s.NextRun != nil {
			next = "in " + HumanDuration(s.NextRun.Sub(now))
		} else if s.Schedule == "continuous" && s.State != LayerOff {
			next = "continuous"
		}
		if s.LastFailure != nil {
			reason := s.LastFailureReason
			if !wide && len(reason) > 48 {
				reason = reason[:45] + "..."
			}
			failed = HumanDuration(now.Sub(s.LastFailure.Time)) + " ago: " + reason
		}
		row := []string{s.Node, s.Label(), s.State, age, target, next, failed}
		if wide {
			newestTime := "-"
			if s.Newest != nil {
				newestTime = s.Newest.UTC().Format(time.RFC3339)
			}
			msg := s.Error
			if msg == "" {
				msg = s.Off
			}
			row = append(row, orDash(s.NewestName), newestTime, orDash(s.Schedule), orDash(msg))
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
