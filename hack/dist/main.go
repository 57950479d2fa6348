package main

import (
	"archive/tar"
	"archive/zip"
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
	"text/template"
	"time"
)

type platform struct {
	OS, Arch, URI, SHA256, Bin, file string
}

var semver = regexp.MustCompile(`^v\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$`)

func main() {
	version := flag.String("version", "", "release version, vX.Y.Z[-pre] (krew wants semver)")
	out := flag.String("out", "_output/dist", "output directory")
	baseURL := flag.String("base-url", "https://github.com/kubectl-dr/kubectl-dr/releases/download", "where the archives will be published; VERSION/ARCHIVE is appended")
	commit := flag.String("commit", "", "commit to record in the binaries")
	manifest := flag.String("manifest", "krew/dr.yaml", "krew manifest to write")
	flag.Parse()
	if err := run(*version, *out, *baseURL, *commit, *manifest); err != nil {
		fmt.Fprintln(os.Stderr, "dist:", err)
		os.Exit(1)
	}
}

func run(version, out, baseURL, commit, manifest string) error {
	if !semver.MatchString(version) {
		return fmt.Errorf("-version %q: want semver with a v, such as v0.1.0 or v0.1.0-rc.1", version)
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	ldflags := "-s -w -X github.com/kubectl-dr/kubectl-dr/internal/buildinfo.version=" + version
	if commit != "" {
		ldflags += " -X github.com/kubectl-dr/kubectl-dr/internal/buildinfo.commit=" + commit
	}
	var plats []platform
	for _, os_ := range []string{"linux", "darwin", "windows"} {
		for _, arch := range []string{"amd64", "arm64"} {
			p := platform{OS: os_, Arch: arch, Bin: "kubectl-dr"}
			ext := ".tar.gz"
			if os_ == "windows" {
				p.Bin, ext = "kubectl-dr.exe", ".zip"
			}
			p.file = fmt.Sprintf("kubectl-dr_%s_%s_%s%s", version, os_, arch, ext)
			bin := filepath.Join(out, "build", os_+"-"+arch, p.Bin)
			cmd := exec.Command("go", "build", "-trimpath", "-ldflags", ldflags, "-o", bin, "./cmd/kubectl-dr")
			cmd.Env = append(os.Environ(), "GOOS="+os_, "GOARCH="+arch, "CGO_ENABLED=0")
			cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
			if err := cmd.Run(); err != nil {
				return fmt.Errorf("build %s/%s: %w", os_, arch, err)
			}
			archive := filepath.Join(out, p.file)
			files := map[string]string{p.Bin: bin, "LICENSE": "LICENSE"}
			if os_ != "windows" {
				files["kubectl_complete-dr"] = "krew/kubectl_complete-dr"
			}
			var err error
			if ext == ".zip" {
				err = writeZip(archive, files)
			} else {
				err = writeTarGz(archive, files)
			}
			if err != nil {
				return fmt.Errorf("archive %s: %w", p.file, err)
			}
			if p.SHA256, err = fileSHA256(archive); err != nil {
				return err
			}
			p.URI = baseURL + "/" + version + "/" + p.file
			plats = append(plats, p)
			fmt.Printf("%s  %s\n", p.SHA256, archive)
		}
	}
	tmpl, err := template.ParseFiles("krew/dr.yaml.tmpl")
	if err != nil {
		return err
	}
	f, err := os.Create(manifest)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := tmpl.Execute(f, map[string]any{"Version": version, "Platforms": plats}); err != nil {
		return err
	}
	fmt.Println("wrote", manifest)
	return f.Close()
}

// order keeps archives byte-identical from run to run.
var order = []string{"kubectl-dr", "kubectl-dr.exe", "kubectl_complete-dr", "LICENSE"}

var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// eachFile hands each archive member, in order, to add with its mode:
// executable but for LICENSE.
func eachFile(files map[string]string, add func(name string, data []byte, mode int64) error) error {
	for _, name := range order {
		src, ok := files[name]
		if !ok {
			continue
		}
		data, err := os.ReadFile(src)
		if err != nil {
			return err
		}
		mode := int64(0o755)
		if name == "LICENSE" {
			mode = 0o644
		}
		if err := add(name, data, mode); err != nil {
			return err
		}
	}
	return nil
}

func writeTarGz(path string, files map[string]string) error {
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

func writeZip(path string, files map[string]string) error {
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
