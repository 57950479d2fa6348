package files

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ErrPreviewChanged: what a restore would act on is not what the preview
// the user confirmed showed; nothing was moved or written.
var ErrPreviewChanged = errors.New("changed since the preview")

// State is a path's state on the node as a preview digests it: enough that
// a write, a touch, a chmod, a replacement or a removal between the
// preview and the restore gives another digest. The inode and ctime catch
// a file rewritten with its old size and mtime put back.
type State struct {
	Type  string `json:"type"` // file, dir, symlink, other, absent
	Size  int64  `json:"size,omitempty"`
	Mode  uint32 `json:"mode,omitempty"`
	MTime int64  `json:"mtime,omitempty"` // ns since the epoch
	CTime int64  `json:"ctime,omitempty"`
	Inode uint64 `json:"inode,omitempty"`
	Link  string `json:"link,omitempty"`
}

// stateOf reads path's state without following a final symlink.
func stateOf(path string) State {
	st, err := os.Lstat(path)
	if err != nil {
		return State{Type: "absent"}
	}
	s := State{Size: st.Size(), Mode: uint32(st.Mode()), MTime: st.ModTime().UnixNano()}
	switch {
	case st.Mode().IsRegular():
		s.Type = "file"
	case st.IsDir():
		s.Type, s.Size = "dir", 0
	case st.Mode()&os.ModeSymlink != 0:
		s.Type = "symlink"
		s.Link, _ = os.Readlink(path)
	default:
		s.Type = "other"
	}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		s.Inode = sys.Ino
		s.CTime = time.Unix(sys.Ctim.Sec, sys.Ctim.Nsec).UnixNano()
	}
	return s
}

// Backed is a file's version in the snapshot.
type Backed struct {
	Type  string    `json:"type"`
	Size  int64     `json:"size"`
	MTime time.Time `json:"mtime"`
}

// digestVersion changes whenever what is digested changes, so that a
// digest from an older agent never matches by accident.
const digestVersion = "kubectl-dr file restore preview 1"

// digest is the sha256 (hex) of what the preview shows and the restore
// acts on: the snapshot, where the files land, which snapshot paths, the
// counts of files to create and replace, and per file to create or replace
// its path, the action, its state on the node now and its version in the
// backup. Files the restore leaves alone (unchanged, not in the backup)
// are not part of it: a file that stops being unchanged becomes one to
// replace or create, which is.
func (pv *Preview) digest() string {
	data, err := json.Marshal(struct {
		Version   string   `json:"version"`
		Snapshot  string   `json:"snapshot"`
		Target    string   `json:"target"`
		Includes  []string `json:"includes"`
		Create    Count    `json:"create"`
		Change    Count    `json:"change"`
		Truncated bool     `json:"truncated"`
		Changes   []Change `json:"changes"`
	}{digestVersion, pv.SnapshotID, pv.Target, pv.Includes, pv.Create, pv.Change, pv.Truncated, pv.Changes})
	if err != nil {
		// Strings, numbers and times only: it cannot fail.
		panic(err)
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// previewsKept is how many previews an engine remembers, to say what
// changed when a restore's digest no longer matches.
const previewsKept = 16

// previewCache is the engine's last previews by digest.
type previewCache struct {
	mu    sync.Mutex
	order []string
	byDig map[string]*Preview
}

func (c *previewCache) put(pv *Preview) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.byDig == nil {
		c.byDig = map[string]*Preview{}
	}
	if _, ok := c.byDig[pv.Digest]; ok {
		return
	}
	c.byDig[pv.Digest] = pv
	c.order = append(c.order, pv.Digest)
	if len(c.order) > previewsKept {
		delete(c.byDig, c.order[0])
		c.order = c.order[1:]
	}
}

func (c *previewCache) get(digest string) *Preview {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.byDig[digest]
}

// maxNamed is how many paths a "changed since the preview" message names.
const maxNamed = 5

// whatChanged says, for people, how now differs from the preview then
// (nil when the agent no longer holds it).
func whatChanged(then, now *Preview) string {
	if then == nil {
		return "the files are not as the preview saw them (this agent no longer holds that preview to say which: it restarted or previewed many times since)"
	}
	var diffs []string
	if then.SnapshotID != now.SnapshotID {
		diffs = append(diffs, fmt.Sprintf("the snapshot is now %s (previewed: %s)", short(now.SnapshotID), short(then.SnapshotID)))
	}
	if then.Target != now.Target || strings.Join(then.Includes, "\x00") != strings.Join(now.Includes, "\x00") {
		diffs = append(diffs, fmt.Sprintf("the paths are now %s in %s (previewed: %s in %s)", strings.Join(now.Includes, ", "), now.Target, strings.Join(then.Includes, ", "), then.Target))
	}
	old := map[string]Change{}
	for _, c := range then.Changes {
		old[c.Path] = c
	}
	cur := map[string]Change{}
	for _, c := range now.Changes {
		cur[c.Path] = c
	}
	var paths []string
	for p := range old {
		paths = append(paths, p)
	}
	for p := range cur {
		if _, ok := old[p]; !ok {
			paths = append(paths, p)
		}
	}
	sort.Strings(paths)
	var files []string
	for _, p := range paths {
		o, inOld := old[p]
		c, inCur := cur[p]
		var word string
		switch {
		case inOld && inCur:
			if o.Kind == c.Kind && o.Now == c.Now && o.Backup == c.Backup {
				continue
			}
			word = stateChange(o.Now, c.Now)
		case inCur && c.Kind == "create":
			// Unchanged at the preview, gone now.
			word = "deleted"
		case inCur:
			word = "modified"
		case o.Kind == "create":
			word = "new, as in the backup"
		default:
			word = "now matches the backup"
		}
		files = append(files, fmt.Sprintf("%s (%s)", p, word))
	}
	if n := len(files); n > maxNamed {
		files = append(files[:maxNamed], fmt.Sprintf("and %d more", n-maxNamed))
	}
	diffs = append(diffs, files...)
	if then.Truncated != now.Truncated || (len(files) == 0 && (then.Create != now.Create || then.Change != now.Change)) {
		diffs = append(diffs, fmt.Sprintf("%d file(s) to create and %d to replace (previewed: %d and %d)", now.Create.Files, now.Change.Files, then.Create.Files, then.Change.Files))
	}
	if len(diffs) == 0 {
		return "the files are not as the preview saw them"
	}
	return strings.Join(diffs, ", ")
}

func stateChange(then, now State) string {
	switch {
	case then.Type == "absent" && now.Type != "absent":
		return "new"
	case then.Type != "absent" && now.Type == "absent":
		return "deleted"
	case then.Type != now.Type:
		return fmt.Sprintf("was a %s, now a %s", then.Type, now.Type)
	}
	return "modified"
}

func short(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}
