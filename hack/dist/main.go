package main

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"text/template"
	"time"
)

type platform struct {
	OS, Arch, URI, SHA256, Bin string
	// Files are the archive's members after the binary (krew's files:).
	Files         []string
	file, buildID string
}

var semver = regexp.MustCompile(`^v\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$`)

type options struct {
	version, commit, out, baseURL, manifest, config, checksums, krewArchive string
	// platforms, when set, keeps only these os/arch pairs (a test's quick
	// build; a release builds them all).
	platforms map[string]bool
}

func main() {
	var o options
	flag.StringVar(&o.version, "version", "", "release version, vX.Y.Z[-pre] (krew wants semver): goreleaser's .Tag")
	flag.StringVar(&o.commit, "commit", "", "commit to record in the binaries: goreleaser's .FullCommit")
	flag.StringVar(&o.out, "out", "_output/dist", "output directory")
	flag.StringVar(&o.baseURL, "base-url", "https://github.com/kubectl-dr/kubectl-dr/releases/download", "where the archives will be published; VERSION/ARCHIVE is appended")
	flag.StringVar(&o.manifest, "manifest", "krew/dr.yaml", "krew manifest to write")
	flag.StringVar(&o.config, "config", ".goreleaser.yaml", "the release definition: platforms, flags, archive names and members")
	flag.StringVar(&o.checksums, "checksums", "", "build nothing: write the krew manifest from this checksums file (goreleaser's checksums.txt)")
	flag.StringVar(&o.krewArchive, "krew-archive", "kubectl-dr", "id of the archive the krew manifest points at")
	plats := flag.String("platforms", "", "only these os/arch pairs, comma-separated (default: every platform the definition lists)")
	flag.Parse()
	if *plats != "" {
		o.platforms = map[string]bool{}
		for _, p := range strings.Split(*plats, ",") {
			if p = strings.TrimSpace(p); !strings.Contains(p, "/") {
				fmt.Fprintf(os.Stderr, "dist: -platforms: %q is not os/arch\n", p)
				os.Exit(2)
			}
			o.platforms[p] = true
		}
	}
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "dist:", err)
		os.Exit(1)
	}
}

func run(o options) error {
	if !semver.MatchString(o.version) {
		return fmt.Errorf("-version %q: want semver with a v, such as v0.1.0 or v0.1.0-rc.1", o.version)
	}
	cfg, err := loadConfig(o.config)
	if err != nil {
		return err
	}
	if _, ok := cfg.archive(o.krewArchive); !ok {
		return fmt.Errorf("%s: no archive with id %q for the krew manifest", o.config, o.krewArchive)
	}
	sums := map[string]string{}
	var krewPlats []platform
	if o.checksums != "" {
		if sums, err = readChecksums(o.checksums); err != nil {
			return err
		}
	} else if err := os.MkdirAll(o.out, 0o755); err != nil {
		return err
	}
	for _, a := range cfg.Archives {
		plats, err := archivePlatforms(cfg, a, o)
		if err != nil {
			return err
		}
		for i := range plats {
			p := &plats[i]
			if o.checksums != "" {
				var ok bool
				if p.SHA256, ok = sums[p.file]; !ok {
					if a.ID != o.krewArchive {
						continue
					}
					return fmt.Errorf("%s lists no %s: is it the checksums file of release %s?", o.checksums, p.file, o.version)
				}
			} else {
				if p.SHA256, err = buildArchive(cfg, a, p, o); err != nil {
					return err
				}
				sums[p.file] = p.SHA256
				fmt.Printf("%s  %s\n", p.SHA256, filepath.Join(o.out, p.file))
			}
			p.URI = o.baseURL + "/" + o.version + "/" + p.file
		}
		if a.ID == o.krewArchive {
			krewPlats = plats
		}
	}
	if o.checksums == "" {
		name := cfg.Checksum.NameTemplate
		if name == "" {
			name = "checksums.txt"
		}
		if err := writeChecksums(filepath.Join(o.out, name), sums); err != nil {
			return err
		}
	}
	return writeManifest(o.manifest, o.version, krewPlats)
}

// archivePlatforms lists archive a's platforms (one per os/arch of each of
// its builds), named as goreleaser names them, without building anything.
func archivePlatforms(cfg *releaseConfig, a archive, o options) ([]platform, error) {
	var plats []platform
	for _, id := range a.IDs {
		b, ok := cfg.build(id)
		if !ok {
			return nil, fmt.Errorf("%s: archive %s: no build with id %q", o.config, a.ID, id)
		}
		for _, goos := range b.Goos {
			for _, goarch := range b.Goarch {
				if o.platforms != nil && !o.platforms[goos+"/"+goarch] {
					continue
				}
				d := newTmplData(cfg.ProjectName, o.version, o.commit)
				d.Os, d.Arch = goos, goarch
				p := platform{OS: goos, Arch: goarch, Bin: b.Binary, buildID: b.ID}
				if goos == "windows" {
					p.Bin += ".exe"
				}
				name, err := render(a.NameTemplate, d)
				if err != nil {
					return nil, fmt.Errorf("archive %s: name_template: %w", a.ID, err)
				}
				format, err := a.format(goos)
				if err != nil {
					return nil, err
				}
				p.file = name + "." + format
				files, err := archiveMembers(a, d)
				if err != nil {
					return nil, err
				}
				for _, f := range files {
					p.Files = append(p.Files, f.name)
				}
				plats = append(plats, p)
			}
		}
	}
	return plats, nil
}

type member struct {
	name, src string
	mode      int64
}

// archiveMembers evaluates an archive's files: entries for one platform,
// as goreleaser does: src is a template and a glob (no match: no member),
// strip_parent keeps the base name, info.mode overrides the file's mode.
func archiveMembers(a archive, d tmplData) ([]member, error) {
	var ms []member
	for _, f := range a.Files {
		glob, err := render(f.Src, d)
		if err != nil {
			return nil, fmt.Errorf("archive %s: files: %w", a.ID, err)
		}
		matches, err := filepath.Glob(glob)
		if err != nil {
			return nil, fmt.Errorf("archive %s: files: %q: %w", a.ID, glob, err)
		}
		for _, m := range matches {
			st, err := os.Stat(m)
			if err != nil {
				return nil, err
			}
			if st.IsDir() {
				return nil, fmt.Errorf("archive %s: files: %s is a directory; hack/dist adds files only", a.ID, m)
			}
			name := filepath.ToSlash(m)
			if f.StripParent {
				name = filepath.Base(m)
			}
			mode := int64(st.Mode().Perm())
			if f.Info.Mode != 0 {
				mode = int64(f.Info.Mode.Perm())
			}
			ms = append(ms, member{name: name, src: m, mode: mode})
		}
	}
	return ms, nil
}

// buildArchive builds p's binary with its build's flags and writes its
// archive into o.out, returning the archive's sha256.
func buildArchive(cfg *releaseConfig, a archive, p *platform, o options) (string, error) {
	b, _ := cfg.build(p.buildID)
	d := newTmplData(cfg.ProjectName, o.version, o.commit)
	d.Os, d.Arch = p.OS, p.Arch
	bin := filepath.Join(o.out, "build", b.ID, p.OS+"-"+p.Arch, p.Bin)
	args := append([]string{"build"}, b.Flags...)
	var ldflags []string
	for _, l := range b.Ldflags {
		r, err := render(l, d)
		if err != nil {
			return "", fmt.Errorf("build %s: ldflags: %w", b.ID, err)
		}
		ldflags = append(ldflags, r)
	}
	if len(ldflags) > 0 {
		args = append(args, "-ldflags", strings.Join(ldflags, " "))
	}
	main := b.Main
	if main == "" {
		main = "."
	}
	args = append(args, "-o", bin, main)
	cmd := exec.Command("go", args...)
	cmd.Env = append(append(os.Environ(), b.Env...), "GOOS="+p.OS, "GOARCH="+p.Arch)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("build %s %s/%s: %w", b.ID, p.OS, p.Arch, err)
	}
	members, err := archiveMembers(a, d)
	if err != nil {
		return "", err
	}
	members = append([]member{{name: p.Bin, src: bin, mode: 0o755}}, members...)
	path := filepath.Join(o.out, p.file)
	if strings.HasSuffix(p.file, ".zip") {
		err = writeZip(path, members)
	} else {
		err = writeTarGz(path, members)
	}
	if err != nil {
		return "", fmt.Errorf("archive %s: %w", p.file, err)
	}
	return fileSHA256(path)
}

func writeManifest(path, version string, plats []platform) error {
	tmpl, err := template.ParseFiles("krew/dr.yaml.tmpl")
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	if err := tmpl.Execute(&buf, map[string]any{"Version": version, "Platforms": plats}); err != nil {
		return fmt.Errorf("krew manifest: %w", err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("write krew manifest: %w", err)
	}
	fmt.Println("wrote", path)
	return nil
}

// readChecksums reads a sha256sum-style file ("<hex>  <name>" lines), the
// format goreleaser writes.
func readChecksums(path string) (map[string]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read checksums: %w", err)
	}
	sums := map[string]string{}
	for i, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		f := strings.Fields(line)
		if len(f) != 2 || len(f[0]) != 64 {
			return nil, fmt.Errorf("%s:%d: %q is not \"<sha256>  <file>\"", path, i+1, line)
		}
		sums[strings.TrimPrefix(f[1], "*")] = f[0]
	}
	return sums, nil
}

func writeChecksums(path string, sums map[string]string) error {
	names := make([]string, 0, len(sums))
	for n := range sums {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, n := range names {
		fmt.Fprintf(&b, "%s  %s\n", sums[n], n)
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		return fmt.Errorf("write checksums: %w", err)
	}
	return nil
}

var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// eachFile hands each archive member, in order, to add. A fixed time and
// order keep archives byte-identical from run to run.
func eachFile(members []member, add func(name string, data []byte, mode int64) error) error {
	for _, m := range members {
		data, err := os.ReadFile(m.src)
		if err != nil {
			return err
		}
		if err := add(m.name, data, m.mode); err != nil {
			return err
		}
	}
	return nil
}

func writeTarGz(path string, files []member) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	gz := gzip.NewWriter(f)
	tw := tar.NewWriter(gz)
	err = eachFile(files, func(name string, data []byte, mode int64) error {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: mode, Size: int64(len(data)), ModTime: epoch, Format: tar.FormatPAX}); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	})
	if err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if err := gz.Close(); err != nil {
		return err
	}
	return f.Close()
}

func writeZip(path string, files []member) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	zw := zip.NewWriter(f)
	err = eachFile(files, func(name string, data []byte, mode int64) error {
		h := &zip.FileHeader{Name: name, Method: zip.Deflate, Modified: epoch}
		h.SetMode(os.FileMode(mode))
		w, err := zw.CreateHeader(h)
		if err != nil {
			return err
		}
		_, err = w.Write(data)
		return err
	})
	if err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	return f.Close()
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
