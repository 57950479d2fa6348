package drillreport

import (
	"bytes"
	"fmt"
	"html/template"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/kubectl-dr/kubectl-dr/internal/units"
)

// Timeline geometry (SVG user units).
const (
	svgWidth   = 1100
	laneLabel  = 260
	laneHeight = 30
	axisHeight = 30
	barPad     = 5
)

type htmlBar struct {
	X, Y, W, H float64
	Class      string
	Title      string
	// Label is the step's name, shown on bars wide enough for it.
	Label string
}

type htmlLane struct {
	Y     float64
	Label string
	Class string
}

type htmlTick struct {
	X     float64
	Label string
}

type htmlView struct {
	R          *Report
	Width      int
	Height     float64
	Lanes      []htmlLane
	Bars       []htmlBar
	Ticks      []htmlTick
	AxisY      float64
	Generated  string
	Layers     []htmlLayer
	RTOClass   string
	RTOTarget  string
	RPOTarget  string
	RTO        string
	Wall       string
	CritDetail string
}

type htmlLayer struct {
	Title string
	Parts []htmlPart
}

type htmlPart struct {
	P        Part
	Facts    [][2]string
	Counts   [][2]string
	Steps    []htmlStep
	Recovery string
	Bytes    string
	Status   string
}

type htmlStep struct {
	S        Step
	Duration string
	Offset   string
	Crit     bool
}

// HTML renders the report as one self-contained page: a pass/fail banner
// with RTO and RPO against the targets, an SVG timeline (one lane per
// part, one bar per step, the critical path outlined) and a table per
// layer. It loads nothing from elsewhere; every name in it is escaped.
func HTML(r *Report) ([]byte, error) {
	v := htmlView{R: r, Width: svgWidth, RTO: seconds(r.RTO.Seconds), Wall: seconds(r.WallSeconds),
		RTOTarget: r.Targets.RTO, RPOTarget: r.Targets.RPO}
	if !r.RTO.Complete {
		v.RTO = "at least " + v.RTO
	}
	crit := map[string]bool{}
	for _, ps := range r.RTO.Path {
		crit[ps.Part+"\x00"+ps.Step] = true
	}
	var parts []string
	for _, ps := range r.RTO.Path {
		parts = append(parts, fmt.Sprintf("%s %s (%s)", ps.Part, ps.Step, seconds(ps.Seconds)))
	}
	v.CritDetail = strings.Join(parts, " → ")

	t0, t1 := r.Started, r.Ended
	for _, p := range r.Parts {
		for _, s := range p.Steps {
			if !s.Start.IsZero() && s.Start.Before(t0) {
				t0 = s.Start
			}
			if s.End.After(t1) {
				t1 = s.End
			}
		}
	}
	span := t1.Sub(t0).Seconds()
	if span <= 0 {
		span = 1
	}
	plot := float64(svgWidth - laneLabel - 20)
	x := func(t time.Time) float64 { return laneLabel + t.Sub(t0).Seconds()/span*plot }
	y := 0.0
	for _, p := range r.Parts {
		label := p.Key()
		if p.Node != "" {
			label += " @ " + p.Node
		}
		lane := htmlLane{Y: y, Label: label, Class: "lane"}
		if len(v.Lanes)%2 == 1 {
			lane.Class += " odd"
		}
		v.Lanes = append(v.Lanes, lane)
		for _, s := range p.Steps {
			if s.Start.IsZero() {
				continue
			}
			end := s.End
			if end.Before(s.Start) {
				end = s.Start
			}
			class := "step"
			if s.Restore {
				class += " restore"
			}
			if !s.OK {
				class += " fail"
			}
			if s.Restore && crit[p.Key()+"\x00"+s.Name] {
				class += " crit"
			}
			title := fmt.Sprintf("%s %s: %s", p.Key(), s.Name, seconds(s.Seconds()))
			if s.Detail != "" {
				title += " — " + s.Detail
			}
			if s.Error != "" {
				title += " — " + s.Error
			}
			bar := htmlBar{X: x(s.Start), Y: y + barPad, W: math.Max(x(end)-x(s.Start), 2), H: laneHeight - 2*barPad, Class: class, Title: title}
			if bar.W >= float64(7*len(s.Name)+6) {
				bar.Label = s.Name
			}
			v.Bars = append(v.Bars, bar)
		}
		y += laneHeight
	}
	v.AxisY = y
	v.Height = y + axisHeight
	step := tickStep(span)
	for s := 0.0; s <= span+1e-9; s += step {
		v.Ticks = append(v.Ticks, htmlTick{X: laneLabel + s/span*plot, Label: seconds(s)})
	}
	if r.Passed {
		v.RTOClass = "pass"
	} else {
		v.RTOClass = "fail"
	}
	v.Generated = r.Ended.UTC().Format(time.RFC3339)

	byLayer := map[string][]htmlPart{}
	var order []string
	for _, p := range r.Parts {
		if _, ok := byLayer[p.Layer]; !ok {
			order = append(order, p.Layer)
		}
		hp := htmlPart{P: p, Bytes: units.HumanBytes(p.BytesRestored)}
		switch {
		case !p.Ran():
			hp.Status = "not run"
		case p.OK:
			hp.Status = "ok"
		default:
			hp.Status = "failed"
		}
		if p.RecoveryPoint != nil {
			hp.Recovery = p.RecoveryPoint.UTC().Format(time.RFC3339)
		}
		hp.Facts = sortedPairs(p.Facts, func(s string) string { return s })
		hp.Counts = sortedPairs(p.Counts, func(n int64) string { return fmt.Sprint(n) })
		for _, s := range p.Steps {
			hp.Steps = append(hp.Steps, htmlStep{S: s, Duration: seconds(s.Seconds()), Offset: "+" + seconds(s.Start.Sub(r.Started).Seconds()), Crit: s.Restore && crit[p.Key()+"\x00"+s.Name]})
		}
		byLayer[p.Layer] = append(byLayer[p.Layer], hp)
	}
	for _, l := range order {
		v.Layers = append(v.Layers, htmlLayer{Title: l, Parts: byLayer[l]})
	}
	var buf bytes.Buffer
	if err := page.Execute(&buf, v); err != nil {
		return nil, fmt.Errorf("render drill report %s: %w", r.ID, err)
	}
	return buf.Bytes(), nil
}

func sortedPairs[V any](m map[string]V, str func(V) string) [][2]string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([][2]string, 0, len(keys))
	for _, k := range keys {
		out = append(out, [2]string{k, str(m[k])})
	}
	return out
}

// tickStep picks an axis step giving 4 to 10 ticks.
func tickStep(span float64) float64 {
	for _, s := range []float64{0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200} {
		if span/s <= 10 {
			return s
		}
	}
	return math.Ceil(span / 10)
}

var page = template.Must(template.New("drill").Funcs(template.FuncMap{
	"f1":    func(f float64) string { return fmt.Sprintf("%.1f", f) },
	"human": seconds,
	"rfc":   func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
}).Parse(pageTemplate))

const pageTemplate = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>DR drill {{.R.ID}}: {{if .R.Passed}}passed{{else}}failed{{end}}</title>
<style>
body{font-family:system-ui,sans-serif;margin:24px;color:#222;background:#fff}
h1{font-size:22px;margin:0 0 8px}
h2{font-size:18px;margin:28px 0 8px}
h3{font-size:15px;margin:18px 0 6px}
.banner{padding:14px 18px;border-radius:6px;font-size:17px;margin-bottom:16px}
.banner.pass{background:#e3f5e1;border:2px solid #2e7d32}
.banner.fail{background:#fde7e7;border:2px solid #c62828}
table{border-collapse:collapse;margin:6px 0 12px}
td,th{border:1px solid #ccc;padding:3px 8px;text-align:left;font-size:13px;vertical-align:top}
th{background:#f3f3f3}
.ok{color:#2e7d32}.bad{color:#c62828}
code{font-size:12px}
svg text{font-size:12px;font-family:system-ui,sans-serif}
.step{fill:#90a4ae;stroke:#fff;stroke-width:1}
.bar-label{fill:#fff;font-size:11px;pointer-events:none}.step.restore{fill:#1e88e5}.step.fail{fill:#e53935}
.step.crit{stroke:#ff6f00;stroke-width:3}
.lane{fill:#fafafa}.lane.odd{fill:#f0f0f0}
.axis{stroke:#555;stroke-width:1}
.grid{stroke:#ddd;stroke-width:1}
</style>
</head>
<body>
<h1>DR drill {{.R.ID}}</h1>
<div class="banner {{.RTOClass}}" id="verdict">
<strong>{{.R.Result}}</strong> —
RTO {{.RTO}} (target {{.RTOTarget}}),
{{range .R.RPO}}RPO {{.Layer}}/{{.Name}} {{human .Seconds}}{{if not .OK}} (over){{end}}; {{end}}
target RPO {{.RPOTarget}}
{{if .R.Reasons}}<ul>{{range .R.Reasons}}<li>{{.}}</li>{{end}}</ul>{{end}}
</div>
<h2>Timeline</h2>
<svg id="timeline" xmlns="http://www.w3.org/2000/svg" width="{{.Width}}" height="{{f1 .Height}}" viewBox="0 0 {{.Width}} {{f1 .Height}}">
{{range .Lanes}}<rect class="{{.Class}}" x="0" y="{{f1 .Y}}" width="{{$.Width}}" height="30"/>
<text x="6" y="{{f1 .Y}}" dy="19">{{.Label}}</text>
{{end}}{{range .Ticks}}<line class="grid" x1="{{f1 .X}}" y1="0" x2="{{f1 .X}}" y2="{{f1 $.AxisY}}"/>
<text x="{{f1 .X}}" y="{{f1 $.AxisY}}" dy="18" text-anchor="middle">{{.Label}}</text>
{{end}}<line class="axis" x1="260" y1="{{f1 .AxisY}}" x2="{{.Width}}" y2="{{f1 .AxisY}}"/>
{{range .Bars}}<rect class="{{.Class}}" x="{{f1 .X}}" y="{{f1 .Y}}" width="{{f1 .W}}" height="{{f1 .H}}"><title>{{.Title}}</title></rect>
{{if .Label}}<text class="bar-label" x="{{f1 .X}}" y="{{f1 .Y}}" dx="4" dy="14">{{.Label}}</text>
{{end}}{{end}}</svg>
<p><small>Blue: restore steps (a real recovery does them); grey: the drill's own checks; red: failed; orange outline: the critical path.</small></p>

<table>
<tr><th>drill</th><td>{{.R.ID}}</td></tr>
<tr><th>cluster</th><td>{{.R.ClusterID}}</td></tr>
<tr><th>run by</th><td>{{.R.Runner}}</td></tr>
<tr><th>backup</th><td>{{.R.Backup}}</td></tr>
<tr><th>started</th><td>{{rfc .R.Started}}</td></tr>
<tr><th>ended</th><td>{{rfc .R.Ended}}</td></tr>
<tr><th>drill wall time</th><td>{{.Wall}}</td></tr>
<tr><th>RTO</th><td>{{.RTO}} — critical path: {{.CritDetail}}</td></tr>
<tr><th>targets</th><td>RTO {{.R.Targets.RTO}}, RPO {{.R.Targets.RPO}} ({{.R.Targets.Source}})</td></tr>
{{range $k, $v := .R.Tools}}<tr><th>{{$k}}</th><td>{{$v}}</td></tr>{{end}}
</table>
{{if .R.Notes}}<h3>Notes</h3><ul>{{range .R.Notes}}<li>{{.}}</li>{{end}}</ul>{{end}}


{{range .Layers}}<h2>{{.Title}}</h2>
{{range .Parts}}<h3>{{.P.Name}}{{if .P.Node}} on {{.P.Node}}{{end}}: <span class="{{if eq .Status "ok"}}ok{{else}}bad{{end}}">{{.Status}}</span></h3>
{{if .P.NotRun}}<p>{{.P.NotRun}}</p>{{end}}
{{if .P.Error}}<p class="bad">{{.P.Error}}</p>{{end}}
{{if .P.Problems}}<ul class="bad">{{range .P.Problems}}<li>{{.}}</li>{{end}}</ul>{{end}}
<table>
<tr><th>recovery point</th><td>{{.Recovery}}</td></tr>
<tr><th>restore time</th><td>{{human .P.RestoreSeconds}}</td></tr>
<tr><th>restored</th><td>{{.Bytes}}, {{.P.FilesRestored}} files</td></tr>
{{if .P.ScratchDir}}<tr><th>kept scratch</th><td><code>{{.P.ScratchDir}}</code></td></tr>{{end}}
{{range .Facts}}<tr><th>{{index . 0}}</th><td><code>{{index . 1}}</code></td></tr>{{end}}
</table>
{{if .Steps}}<table><tr><th>step</th><th>start</th><th>took</th><th>restore</th><th>ok</th><th>detail</th></tr>
{{range .Steps}}<tr><td>{{.S.Name}}{{if .Crit}} ★{{end}}</td><td>{{.Offset}}</td><td>{{.Duration}}</td><td>{{if .S.Restore}}yes{{end}}</td><td class="{{if .S.OK}}ok{{else}}bad{{end}}">{{if .S.OK}}ok{{else}}failed{{end}}</td><td>{{.S.Detail}}{{if .S.Error}} <span class="bad">{{.S.Error}}</span>{{end}}</td></tr>
{{end}}</table>{{end}}
{{if .Counts}}<table><tr><th>counted</th><th>n</th></tr>{{range .Counts}}<tr><td>{{index . 0}}</td><td>{{index . 1}}</td></tr>{{end}}</table>{{end}}
{{if .P.Checks}}<table><tr><th>check</th><th>query</th><th>expect</th><th>got</th><th>ok</th><th>took</th></tr>
{{range .P.Checks}}<tr><td>{{.Name}}</td><td><code>{{.Query}}</code></td><td>{{.Expect}}</td><td>{{.Got}}</td><td class="{{if .OK}}ok{{else}}bad{{end}}">{{if .OK}}ok{{else}}failed {{.Error}}{{end}}</td><td>{{.DurationMS}} ms</td></tr>
{{end}}</table>{{end}}
{{end}}{{end}}
</body>
</html>
`
