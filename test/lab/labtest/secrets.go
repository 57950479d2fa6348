package labtest

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kubectl-dr/kubectl-dr/test/lab"
)

// secretWatch looks for the lab's secrets where no secret may be: on a
// process's command line (any user on the node reads /proc/PID/cmdline)
// and in the logs the lab's processes wrote. While the tests run it reads
// every process's command line every sampleEvery (a short-lived restic or
// psql is caught when it lives longer than that); at the end it reads the
// logs.
type secretWatch struct {
	secrets map[string]string // what -> value
	dirs    []string          // logs to read at the end
	stop    chan struct{}
	done    chan struct{}

	mu    sync.Mutex
	found map[string]bool
}

const sampleEvery = 25 * time.Millisecond

// labSecrets are the values no command line or log may hold: the store's
// and the application store's secret keys, the snapshot key's identity,
// the restic password, the k3s server token and the API server's token.
func labSecrets(l *lab.Lab) map[string]string {
	s := map[string]string{
		"the store's secret key (AWS_SECRET_ACCESS_KEY)": l.State.MinIOSecret,
		"the application store's secret key":             l.State.AppS3Secret,
		"the API server token":                           l.State.KubeToken,
	}
	read := func(what, path string, pick func(string) string) {
		data, err := os.ReadFile(path)
		if err == nil {
			s[what] = pick(string(data))
		}
	}
	read("the snapshot key's identity", l.SnapshotKeyPath(), func(v string) string {
		for _, line := range strings.Split(v, "\n") {
			if strings.HasPrefix(line, "AGE-SECRET-KEY-") {
				return strings.TrimSpace(line)
			}
		}
		return ""
	})
	read("the restic password", l.ResticPasswordPath(), strings.TrimSpace)
	read("the k3s server token", filepath.Join(l.Dir, "pki", "server-token"), strings.TrimSpace)
	for what, v := range s {
		// Short values would match by chance.
		if len(v) < 16 {
			delete(s, what)
		}
	}
	return s
}

// watchSecrets watches for the lab's secrets in the lab's own logs and
// the node's pod logs.
func watchSecrets(l *lab.Lab) *secretWatch {
	return startWatch(labSecrets(l), l.Dir, "/var/log/pods")
}

func startWatch(secrets map[string]string, logDirs ...string) *secretWatch {
	w := &secretWatch{
		secrets: secrets,
		dirs:    logDirs,
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
		found:   map[string]bool{},
	}
	go w.sample()
	return w
}

func (w *secretWatch) sample() {
	defer close(w.done)
	self := strconv.Itoa(os.Getpid())
	t := time.NewTicker(sampleEvery)
	defer t.Stop()
	for {
		paths, _ := filepath.Glob("/proc/[0-9]*/cmdline")
		for _, p := range paths {
			pid := filepath.Base(filepath.Dir(p))
			if pid == self {
				continue
			}
			data, err := os.ReadFile(p)
			if err != nil || len(data) == 0 {
				continue
			}
			for what, v := range w.secrets {
				if bytes.Contains(data, []byte(v)) {
					args := strings.Split(strings.TrimRight(string(data), "\x00"), "\x00")
					w.add(fmt.Sprintf("%s on the command line of %s (pid %s)", what, filepath.Base(args[0]), pid))
				}
			}
		}
		select {
		case <-w.stop:
			return
		case <-t.C:
		}
	}
}

func (w *secretWatch) add(finding string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.found[finding] = true
}

// isLog says whether a file under the lab is a log: the processes' logs
// (logs/*.log, the node's pod logs) and every *.log the lab wrote.
func isLog(path string) bool {
	return strings.HasSuffix(path, ".log") || strings.Contains(path, "/var/log/pods/")
}

// Findings stops the sampling, reads the logs and returns what it found,
// sorted; no value is printed, only what it is and where.
func (w *secretWatch) Findings() []string {
	close(w.stop)
	<-w.done
	for _, dir := range w.dirs {
		_ = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil || !d.Type().IsRegular() || !isLog(path) {
				return nil
			}
			data, err := os.ReadFile(path)
			if err != nil {
				return nil
			}
			for what, v := range w.secrets {
				if bytes.Contains(data, []byte(v)) {
					w.add(fmt.Sprintf("%s in the log %s", what, path))
				}
			}
			return nil
		})
	}
	out := make([]string, 0, len(w.found))
	for f := range w.found {
		out = append(out, f)
	}
	sort.Strings(out)
	return out
}
