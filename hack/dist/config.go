package main

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"text/template"

	"encoding/json"

	"sigs.k8s.io/yaml"
)

// releaseConfig is the part of .goreleaser.yaml that decides which
// archives a release has and what is in them. Builds and archives are
// decoded strictly: a key this program does not implement is an error, so
// the two never silently disagree.
type releaseConfig struct {
	ProjectName string    `json:"project_name"`
	Builds      []build   `json:"builds"`
	Archives    []archive `json:"archives"`
	Checksum    struct {
		NameTemplate string `json:"name_template"`
		Algorithm    string `json:"algorithm"`
	} `json:"checksum"`
}

type build struct {
	ID           string   `json:"id"`
	Binary       string   `json:"binary"`
	Main         string   `json:"main"`
	Env          []string `json:"env"`
	Flags        []string `json:"flags"`
	Ldflags      []string `json:"ldflags"`
	Goos         []string `json:"goos"`
	Goarch       []string `json:"goarch"`
	NoMainCheck  bool     `json:"no_main_check"`
	ModTimestamp string   `json:"mod_timestamp"` // goreleaser's; archives here have a fixed time
}

type archive struct {
	ID              string   `json:"id"`
	IDs             []string `json:"ids"`
	NameTemplate    string   `json:"name_template"`
	Formats         []string `json:"formats"`
	FormatOverrides []struct {
		Goos    string   `json:"goos"`
		Formats []string `json:"formats"`
	} `json:"format_overrides"`
	BuildsInfo fileInfo      `json:"builds_info"`
	Files      []archiveFile `json:"files"`
}

type fileInfo struct {
	Mode  os.FileMode `json:"mode"`
	MTime string      `json:"mtime"` // goreleaser's; archives here have a fixed time
}

// archiveFile is a `files:` entry: a path, or {src, strip_parent, info}.
type archiveFile struct {
	Src         string   `json:"src"`
	StripParent bool     `json:"strip_parent"`
	Info        fileInfo `json:"info"`
}

func (f *archiveFile) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		return json.Unmarshal(b, &f.Src)
	}
	type plain archiveFile
	return decodeStrict(b, (*plain)(f))
}

// loadConfig reads the release definition.
func loadConfig(path string) (*releaseConfig, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read release definition: %w", err)
	}
	var top map[string]json.RawMessage
	if err := yaml.Unmarshal(data, &top); err != nil {
		return nil, fmt.Errorf("parse %s: %w", path, err)
	}
	var c releaseConfig
	for key, dst := range map[string]any{"project_name": &c.ProjectName, "builds": &c.Builds, "archives": &c.Archives, "checksum": &c.Checksum} {
		raw, ok := top[key]
		if !ok {
			continue
		}
		if err := decodeStrict(raw, dst); err != nil {
			return nil, fmt.Errorf("%s: %s: %w (hack/dist builds what this file says; teach it the new key or drop it)", path, key, err)
		}
	}
	if len(c.Archives) == 0 {
		return nil, fmt.Errorf("%s: no archives", path)
	}
	if c.Checksum.Algorithm != "" && c.Checksum.Algorithm != "sha256" {
		return nil, fmt.Errorf("%s: checksum algorithm %q: krew wants sha256", path, c.Checksum.Algorithm)
	}
	return &c, nil
}

// decodeStrict decodes JSON b into v, refusing keys v has no field for.
func decodeStrict(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

func (c *releaseConfig) build(id string) (build, bool) {
	for _, b := range c.Builds {
		if b.ID == id {
			return b, true
		}
	}
	return build{}, false
}

func (c *releaseConfig) archive(id string) (archive, bool) {
	for _, a := range c.Archives {
		if a.ID == id {
			return a, true
		}
	}
	return archive{}, false
}

// format is the archive format for goos: tar.gz or zip.
func (a archive) format(goos string) (string, error) {
	formats := a.Formats
	for _, o := range a.FormatOverrides {
		if o.Goos == goos {
			formats = o.Formats
		}
	}
	if len(formats) == 0 {
		formats = []string{"tar.gz"} // goreleaser's default
	}
	if len(formats) != 1 || (formats[0] != "tar.gz" && formats[0] != "zip") {
		return "", fmt.Errorf("archive %s: formats %v for %s: hack/dist writes one tar.gz or zip", a.ID, formats, goos)
	}
	return formats[0], nil
}

// tmplData is what goreleaser's templates see, the part ours use.
type tmplData struct {
	ProjectName, Tag, Version, Os, Arch                     string
	FullCommit, Commit, ShortCommit                         string
	CommitDate, CommitTimestamp, Binary, ArtifactName, Date string
}

func newTmplData(project, tag, commit string) tmplData {
	short := commit
	if len(short) > 7 {
		short = short[:7]
	}
	return tmplData{ProjectName: project, Tag: tag, Version: strings.TrimPrefix(tag, "v"), FullCommit: commit, Commit: commit, ShortCommit: short}
}

// render applies a goreleaser template (Go text/template with the
// functions ours use).
func render(text string, d tmplData) (string, error) {
	t, err := template.New("").Option("missingkey=error").Funcs(template.FuncMap{
		"replace":    strings.ReplaceAll,
		"tolower":    strings.ToLower,
		"toupper":    strings.ToUpper,
		"trimprefix": strings.TrimPrefix,
	}).Parse(text)
	if err != nil {
		return "", fmt.Errorf("template %q: %w", text, err)
	}
	var b strings.Builder
	if err := t.Execute(&b, d); err != nil {
		return "", fmt.Errorf("template %q: %w", text, err)
	}
	return b.String(), nil
}
