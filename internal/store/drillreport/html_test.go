package drillreport

import (
	"encoding/xml"
	"strings"
	"testing"
	"time"
)

type svgDoc struct {
	Rects []struct {
		Class string  `xml:"class,attr"`
		X     float64 `xml:"x,attr"`
		W     float64 `xml:"width,attr"`
		Title string  `xml:"title"`
	} `xml:"rect"`
	Texts []string `xml:"text"`
}

func timeline(t *testing.T, page string) svgDoc {
	t.Helper()
	start := strings.Index(page, "<svg")
	end := strings.Index(page, "</svg>")
	if start < 0 || end < start {
		t.Fatalf("no <svg> timeline in the page")
	}
	var doc svgDoc
	if err := xml.Unmarshal([]byte(page[start:end+len("</svg>")]), &doc); err != nil {
		t.Fatalf("the timeline is not well-formed SVG: %v", err)
	}
	return doc
}

func TestHTMLTimeline(t *testing.T) {
	r := sample()
	r.Judge(30*time.Minute, 15*time.Minute)
	data, err := HTML(r)
	if err != nil {
		t.Fatal(err)
	}
	page := string(data)
	for _, external := range []string{"<script", "src=", "href=", "@import", "url("} {
		if strings.Contains(page, external) {
			t.Errorf("the page is not self-contained: it has %q", external)
		}
	}
	if !strings.Contains(page, `<div class="banner pass" id="verdict">`) || !strings.Contains(page, "PASSED") {
		t.Errorf("no pass banner")
	}
	doc := timeline(t, page)
	var lanes, bars, crit int
	for _, rc := range doc.Rects {
		classes := strings.Fields(rc.Class)
		switch {
		case has(classes, "lane"):
			lanes++
		case has(classes, "step"):
			bars++
			if rc.X < laneLabel || rc.X+rc.W > svgWidth {
				t.Errorf("bar %q at x %v width %v is outside the plot", rc.Title, rc.X, rc.W)
			}
			if has(classes, "crit") {
				crit++
				if !strings.HasPrefix(rc.Title, "postgres/pg-main ") {
					t.Errorf("bar %q is on the critical path", rc.Title)
				}
			}
		}
	}
	if lanes != 3 || bars != 10 || crit != 2 {
		t.Errorf("timeline has %d lanes, %d bars, %d on the critical path; want 3, 10, 2", lanes, bars, crit)
	}
	if !has(doc.Texts, "postgres/pg-main @ server-1") || !has(doc.Texts, "0s") {
		t.Errorf("lane labels or axis ticks missing: %q", doc.Texts)
	}
}

// Names come from agents and configs: the page shows them as text, never
// as markup.
func TestHTMLEscapesHostileNames(t *testing.T) {
	const evil = `<script>alert("x")</script>" onload="alert(1)`
	r := sample()
	r.Runner = evil
	r.Parts[0].Name = evil
	r.Parts[0].Node = evil
	r.Parts[0].Facts = map[string]string{evil: evil}
	r.Parts[0].Steps[0].Detail = evil
	r.Parts[2].Checks[0].Query = evil
	r.Parts[1].OK, r.Parts[1].Problems = false, []string{evil}
	r.Judge(time.Hour, time.Hour)
	data, err := HTML(r)
	if err != nil {
		t.Fatal(err)
	}
	page := string(data)
	if strings.Contains(page, "<script") || strings.Contains(page, `" onload="`) {
		t.Fatalf("a hostile name reached the page unescaped")
	}
	if !strings.Contains(page, "&lt;script&gt;") {
		t.Errorf("the hostile name is not shown escaped")
	}
	if !strings.Contains(page, `<div class="banner fail" id="verdict">`) {
		t.Errorf("no fail banner")
	}
	doc := timeline(t, page)
	if !has(doc.Texts, "etcd/"+evil+" @ "+evil) {
		t.Errorf("the lane label does not read as the name: %q", doc.Texts)
	}
}

func has(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
