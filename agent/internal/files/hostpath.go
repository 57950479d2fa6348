package files

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"
)

// ErrNotOnNode is a restore target that would land in the agent's
// container instead of on the node.
var ErrNotOnNode = errors.New("is not on the node")

// onNode checks that dir, a restore target, reaches the node's file system
// from a container: it must lie under a directory mounted from the host
// (the data dir, the state dir, the backup paths). A directory on the
// container's own root would be restored into the container's layer and
// lost with it. mountinfo is /proc/self/mountinfo's content.
func onNode(dir string, mountinfo io.Reader) error {
	mounts, err := mountPoints(mountinfo)
	if err != nil {
		return err
	}
	// The nearest directory that exists decides: a target not yet made
	// is created on its parent's file system.
	p := filepath.Clean(dir)
	for {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			p = real
			break
		}
		parent := filepath.Dir(p)
		if parent == p {
			break
		}
		p = parent
	}
	best := ""
	for _, m := range mounts {
		if within(m, p) && len(m) > len(best) {
			best = m
		}
	}
	if best == "/" || best == "" {
		return fmt.Errorf("--target %s %w: the agent runs in a container that does not mount it from the host, so the files would be restored into the container and lost with it; choose a directory under one the agent mounts (k3s's data dir, the agent's state dir, a configured backup path), or add it with kubectl dr config set restic.paths", dir, ErrNotOnNode)
	}
	return nil
}

// mountPoints lists the mount points of a mountinfo file (the fifth
// field; spaces and other bytes octal-escaped).
func mountPoints(r io.Reader) ([]string, error) {
	var out []string
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 5 {
			continue
		}
		out = append(out, unescapeMount(f[4]))
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read mountinfo: %w", err)
	}
	return out, nil
}

func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
