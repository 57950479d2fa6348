package printers

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/term"
)

// Progress reports a long operation's progress on stderr: a redrawn bar on
// a terminal, one JSON event a line with -o json, nothing otherwise.
type Progress struct {
	w    io.Writer
	tty  bool
	json bool

	mu    sync.Mutex
	start time.Time
	last  time.Time
	drawn bool
}

// NewProgress decides how to report from the writer and the output format.
func NewProgress(w io.Writer, output string) *Progress {
	tty := false
	if f, ok := w.(*os.File); ok {
		tty = term.IsTerminal(int(f.Fd()))
	}
	return &Progress{w: w, tty: tty, json: output == JSON, start: time.Now()}
}

// ProgressEvent is the JSON form of one progress report.
type ProgressEvent struct {
	Type       string  `json:"type"`
	Node       string  `json:"node,omitempty"`
	Phase      string  `json:"phase,omitempty"`
	Message    string  `json:"message,omitempty"`
	BytesDone  int64   `json:"bytesDone,omitempty"`
	BytesTotal int64   `json:"bytesTotal,omitempty"`
	Percent    float64 `json:"percent,omitempty"`
}

// Update reports one step.
func (p *Progress) Update(ev ProgressEvent) {
	p.mu.Lock()
	defer p.mu.Unlock()
	ev.Type = "progress"
	switch {
	case p.json:
		data, _ := json.Marshal(ev)
		fmt.Fprintln(p.w, string(data))
	case p.tty:
		now := time.Now()
		if now.Sub(p.last) < 100*time.Millisecond && ev.Message == "" {
			return
		}
		p.last = now
		line := fmt.Sprintf("%s %s", ev.Node, ev.Phase)
		if ev.BytesTotal > 0 {
			pct := min(100*float64(ev.BytesDone)/float64(ev.BytesTotal), 100)
			width := 30
			fill := int(pct / 100 * float64(width))
			line += fmt.Sprintf(" [%s%s] %5.1f%% %s/%s", strings.Repeat("=", fill), strings.Repeat(" ", width-fill), pct, HumanBytes(ev.BytesDone), HumanBytes(ev.BytesTotal))
		} else if ev.BytesDone > 0 {
			line += " " + HumanBytes(ev.BytesDone)
		}
		if ev.Message != "" {
			line += " " + ev.Message
		}
		line += fmt.Sprintf(" %s", time.Since(p.start).Round(time.Second))
		fmt.Fprintf(p.w, "\r\033[K%s", line)
		p.drawn = true
	}
}

// Done ends the bar's line.
func (p *Progress) Done() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.drawn {
		fmt.Fprintln(p.w)
		p.drawn = false
	}
}
