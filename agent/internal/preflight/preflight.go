package preflight

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/kubectl-dr/kubectl-dr/agent/internal/etcdsnap"
	"github.com/kubectl-dr/kubectl-dr/internal/k3sboot"
	"github.com/kubectl-dr/kubectl-dr/internal/registry"
	"github.com/kubectl-dr/kubectl-dr/internal/store/dbsnap"
	"github.com/kubectl-dr/kubectl-dr/internal/units"
)

// Check names, as rows show them and --skip-preflight takes them.
const (
	CheckToken      = "token"
	CheckK3sVersion = "k3s-version"
	CheckEncryption = "encryption-config"
	CheckDisk       = "disk"
)

// Checks lists every check, in the order they run.
var Checks = []string{CheckToken, CheckK3sVersion, CheckEncryption, CheckDisk}

// States of a row.
const (
	OK      = "ok"
	Skipped = "skipped"
	Failed  = "failed"
)

// Row is one check's outcome.
type Row struct {
	Check string
	State string
	// Detail says what was found; Fix, for a failed row, what to do.
	Detail string
	Fix    string
}

// Input is what the checks look at.
type Input struct {
	Snapshot *dbsnap.Snapshot
	// Path is the verified local copy of the snapshot.
	Path string
	// NewHost: the restore puts the token and encryption config kept with
	// the snapshot in place (a new host), so those are what must fit;
	// otherwise the node's own files are.
	NewHost bool
	// TokenOnly: of the files kept with the snapshot only the token is put
	// in place (dr-agent etcd restore --token-from-store); the encryption
	// config is the node's.
	TokenOnly bool
	// Escrow is the bootstrap files kept with the snapshot
	// (dbsnap.FetchBootstrap), or EscrowErr why they could not be read.
	Escrow    map[string][]byte
	EscrowErr error
	// DataDir is k3s's data dir on this node; Flavor the node's
	// restore.flavor; K3sBinary its k3s (run with --version), behind
	// K3sPrefix (nsenter into the host's namespaces from a container).
	DataDir   string
	Flavor    string
	K3sBinary string
	K3sPrefix []string
	// Free returns the free bytes of the file system holding path
	// (default: statfs).
	Free func(path string) (uint64, error)
}

// Files in the data dir (and the escrow) the checks read.
const (
	tokenFile      = "server/token"
	encryptionFile = "server/cred/encryption-config.json"
)

// Failures returns the failed rows not in skip.
func Failures(rows []Row, skip []string) []Row {
	var out []Row
	for _, r := range rows {
		if r.State == Failed && !contains(skip, r.Check) {
			out = append(out, r)
		}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Run runs every check.
func Run(ctx context.Context, in Input) []Row {
	return []Row{token(ctx, in), k3sVersion(ctx, in), encryption(ctx, in), disk(in)}
}

// file is a bootstrap file the restore will use: the escrow's on a new
// host, else the node's. where names it for messages.
func file(in Input, rel string) (data []byte, where string, err error) {
	if in.NewHost && (!in.TokenOnly || rel == tokenFile) {
		where = "the files kept with snapshot " + in.Snapshot.Name
		if in.EscrowErr != nil {
			return nil, where, in.EscrowErr
		}
		d, ok := in.Escrow[rel]
		if !ok {
			return nil, where, fmt.Errorf("%s: %w", rel, os.ErrNotExist)
		}
		return d, where, nil
	}
	p := filepath.Join(in.DataDir, filepath.FromSlash(rel))
	d, err := os.ReadFile(p)
	return d, p, err
}

func token(ctx context.Context, in Input) Row {
	row := Row{Check: CheckToken}
	keys := map[string][]byte{}
	if err := etcdsnap.EachValue(ctx, in.Path, k3sboot.Prefix, func(k string, v []byte) error {
		keys[k] = bytes.Clone(v)
		return nil
	}); err != nil {
		row.State, row.Detail = Failed, fmt.Sprintf("read the snapshot's %s keys: %v", k3sboot.Prefix, err)
		row.Fix = "the snapshot file does not read back: pick another snapshot"
		return row
	}
	if len(keys) == 0 {
		row.State, row.Detail = Skipped, "the snapshot holds no k3s bootstrap data ("+k3sboot.Prefix+"...): no token to match"
		return row
	}
	var have []string
	for k := range keys {
		have = append(have, k)
	}
	tok, where, err := file(in, tokenFile)
	if err != nil {
		row.State = Failed
		if in.NewHost {
			row.Detail = fmt.Sprintf("no server token in %s: %v", where, err)
			row.Fix = "the token was not kept with this snapshot (no snapshot key when it was taken, or the key file is wrong): give the snapshot key, or put the old cluster's token in " + tokenFile + " yourself"
		} else {
			row.Detail = fmt.Sprintf("no server token at %s: %v", where, err)
			row.Fix = "a new host: restore it with kubectl dr recover (or dr-agent etcd restore --new-host), which puts the token kept with the snapshot in place"
		}
		return row
	}
	want := k3sboot.Key(string(tok))
	value, ok := keys[want]
	if !ok {
		row.State = Failed
		row.Detail = fmt.Sprintf("the server token in %s makes bootstrap key %s, the snapshot's bootstrap data is under %s: k3s would refuse with %q", where, want, strings.Join(have, ", "), k3sboot.RefusedMessage)
		if in.NewHost {
			row.Fix = "the token kept with the snapshot is not the one its cluster used: put the old cluster's token in " + tokenFile + " and restore without the kept files"
		} else {
			row.Fix = "this node's token is not the snapshot's cluster's: put the token kept with the snapshot back (dr-agent etcd restore --token-from-store), or restore onto new hosts with kubectl dr recover"
		}
		return row
	}
	if _, err := k3sboot.Decrypt(string(tok), value); err != nil {
		row.State = Failed
		row.Detail = fmt.Sprintf("the server token in %s matches bootstrap key %s but does not decrypt it: %v", where, want, err)
		row.Fix = "the snapshot's bootstrap data is damaged or made with another token of the same hash: pick another snapshot"
		return row
	}
	row.State, row.Detail = OK, fmt.Sprintf("the server token in %s matches and decrypts the snapshot's bootstrap data (%s)", where, want)
	return row
}

var versionRE = regexp.MustCompile(`v(\d+)\.(\d+)\.(\d+)[^\s]*`)

// minor parses "v1.31.4+k3s1" into 1, 31.
func minor(v string) (major, minor int, ok bool) {
	m := versionRE.FindStringSubmatch(v)
	if m == nil {
		return 0, 0, false
	}
	a, _ := strconv.Atoi(m[1])
	b, _ := strconv.Atoi(m[2])
	return a, b, true
}

// snapshotK3s is the newest k3s version the snapshot's Node objects
// report (status.nodeInfo.kubeletVersion: k3s's kubelet says v1.31.4+k3s1),
// and the newest kubelet version of any node.
func snapshotK3s(ctx context.Context, path string) (k3s, kubelet string, err error) {
	dec := registry.NewDecoder()
	newer := func(a, b string) bool {
		am, an, _ := minor(a)
		bm, bn, _ := minor(b)
		return b == "" || am > bm || (am == bm && an > bn) || (am == bm && an == bn && a > b)
	}
	err = etcdsnap.EachValue(ctx, path, "/registry/minions/", func(k string, v []byte) error {
		obj, err := dec.Decode(k, v)
		if err != nil {
			return nil
		}
		ver, _, _ := unstructuredString(obj.Object, "status", "nodeInfo", "kubeletVersion")
		if ver == "" {
			return nil
		}
		if newer(ver, kubelet) {
			kubelet = ver
		}
		if strings.Contains(ver, "+k3s") && newer(ver, k3s) {
			k3s = ver
		}
		return nil
	})
	return k3s, kubelet, err
}

func unstructuredString(obj map[string]any, fields ...string) (string, bool, error) {
	var cur any = obj
	for _, f := range fields {
		m, ok := cur.(map[string]any)
		if !ok {
			return "", false, nil
		}
		cur = m[f]
	}
	s, ok := cur.(string)
	return s, ok, nil
}

// NodeK3sVersion runs `k3s --version` and returns the version it names
// ("k3s version v1.31.4+k3s1 (abcdef12)").
func NodeK3sVersion(ctx context.Context, prefix []string, bin string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	argv := append(append([]string{}, prefix...), bin, "--version")
	out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) && len(ee.Stderr) > 0 {
			return "", fmt.Errorf("%s --version: %w: %s", bin, err, bytes.TrimSpace(ee.Stderr))
		}
		return "", fmt.Errorf("%s --version: %w", bin, err)
	}
	line, _, _ := strings.Cut(string(out), "\n")
	v := versionRE.FindString(line)
	if v == "" {
		return "", fmt.Errorf("%s --version printed %q: no version in it", bin, strings.TrimSpace(line))
	}
	return v, nil
}

func k3sVersion(ctx context.Context, in Input) Row {
	row := Row{Check: CheckK3sVersion}
	if in.Flavor != "" && in.Flavor != "k3s" {
		row.State, row.Detail = Skipped, "restore.flavor is "+in.Flavor+": no k3s on this node"
		return row
	}
	if _, err := os.Stat(in.K3sBinary); err != nil && len(in.K3sPrefix) == 0 && !in.NewHost {
		// A server on SQLite restores without running k3s; a cluster
		// reset without it is refused by the plan itself.
		row.State, row.Detail = Skipped, fmt.Sprintf("no k3s binary at %s (restore.k3sBinary): its version cannot be compared", in.K3sBinary)
		return row
	}
	have, err := NodeK3sVersion(ctx, in.K3sPrefix, in.K3sBinary)
	if err != nil {
		row.State, row.Detail = Failed, err.Error()
		row.Fix = "install k3s on this node (restore.k3sBinary names it) before restoring onto it"
		return row
	}
	snapVer, kubelet, err := snapshotK3s(ctx, in.Path)
	if err != nil {
		row.State, row.Detail = Failed, fmt.Sprintf("read the snapshot's nodes: %v", err)
		row.Fix = "the snapshot file does not read back: pick another snapshot"
		return row
	}
	if snapVer == "" {
		row.State = Skipped
		row.Detail = "k3s " + have + " on this node; the snapshot's nodes ran no k3s"
		if kubelet != "" {
			row.Detail += " (kubelet " + kubelet + ")"
		}
		row.Detail += ": nothing to compare"
		return row
	}
	hm, hn, _ := minor(have)
	sm, sn, _ := minor(snapVer)
	if hm < sm || (hm == sm && hn < sn) {
		row.State = Failed
		row.Detail = fmt.Sprintf("k3s %s on this node is older than the %s the snapshot's cluster ran: k3s does not go back a minor version over its datastore", have, snapVer)
		row.Fix = fmt.Sprintf("install k3s v%d.%d (or newer, one minor at most) on this node first", sm, sn)
		return row
	}
	if hm == sm && hn > sn+1 {
		row.State = Failed
		row.Detail = fmt.Sprintf("k3s %s on this node is more than one minor version newer than the %s the snapshot's cluster ran: Kubernetes upgrades one minor at a time", have, snapVer)
		row.Fix = fmt.Sprintf("install k3s v%d.%d or v%d.%d first, restore, then upgrade", sm, sn, sm, sn+1)
		return row
	}
	row.State, row.Detail = OK, fmt.Sprintf("k3s %s on this node can take the snapshot of a cluster on %s", have, snapVer)
	return row
}

func encryption(ctx context.Context, in Input) Row {
	row := Row{Check: CheckEncryption}
	var encrypted int
	var sampleKey string
	var sample []byte
	var provider, keyName string
	err := etcdsnap.EachValue(ctx, in.Path, "/registry/secrets/", func(k string, v []byte) error {
		if p, name, ok := registry.Encrypted(v); ok {
			encrypted++
			if sample == nil {
				sampleKey, sample, provider, keyName = k, bytes.Clone(v), p, name
			}
		}
		return nil
	})
	if err != nil {
		row.State, row.Detail = Failed, fmt.Sprintf("read the snapshot's Secrets: %v", err)
		row.Fix = "the snapshot file does not read back: pick another snapshot"
		return row
	}
	if encrypted == 0 {
		row.State, row.Detail = Skipped, "no Secret in the snapshot is encrypted at rest"
		return row
	}
	data, where, err := file(in, encryptionFile)
	if err != nil {
		row.State = Failed
		row.Detail = fmt.Sprintf("%d Secret(s) in the snapshot are encrypted at rest (%s key %q) and there is no encryption config in %s: %v", encrypted, provider, keyName, where, err)
		if in.NewHost {
			row.Fix = "the encryption config was not kept with this snapshot: put the old cluster's " + encryptionFile + " in place yourself, or the API server cannot read any Secret"
		} else {
			row.Fix = "put the old cluster's encryption config at " + filepath.Join(in.DataDir, encryptionFile) + " (a new host: kubectl dr recover puts the one kept with the snapshot there)"
		}
		return row
	}
	enc, err := registry.ParseEncryption(data)
	if err == nil {
		_, err = enc.Decrypt(sampleKey, sample)
	}
	if err != nil {
		row.State = Failed
		row.Detail = fmt.Sprintf("the encryption config in %s does not decrypt the snapshot's Secrets: %v", where, err)
		row.Fix = "use the encryption config of the cluster the snapshot came from"
		return row
	}
	row.State, row.Detail = OK, fmt.Sprintf("%d encrypted Secret(s); the encryption config in %s decrypts them (%s key %q)", encrypted, where, provider, keyName)
	return row
}

func disk(in Input) Row {
	row := Row{Check: CheckDisk}
	free := in.Free
	if free == nil {
		free = statfsFree
	}
	dir := in.DataDir
	for dir != "/" && dir != "." {
		if _, err := os.Stat(dir); err == nil {
			break
		}
		dir = filepath.Dir(dir)
	}
	have, err := free(dir)
	if err != nil {
		row.State, row.Detail = Failed, fmt.Sprintf("free space of %s: %v", dir, err)
		row.Fix = "check the file system of the data dir"
		return row
	}
	need := uint64(2 * in.Snapshot.Size)
	if have < need {
		row.State = Failed
		row.Detail = fmt.Sprintf("%s free at %s, the restore needs %s (twice the snapshot's %s: the restored data and the verified copy)", units.HumanBytes(int64(have)), dir, units.HumanBytes(int64(need)), units.HumanBytes(in.Snapshot.Size))
		row.Fix = "free space on that file system, or give k3s a data dir on a larger one"
		return row
	}
	row.State, row.Detail = OK, fmt.Sprintf("%s free at %s, twice the snapshot is %s", units.HumanBytes(int64(have)), dir, units.HumanBytes(int64(need)))
	return row
}
