package archive

import (
	"archive/tar"
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
)

func write(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for name, data := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func list(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(root, p)
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	return out
}

func TestRoundTrip(t *testing.T) {
	ws := t.TempDir()
	write(t, ws, map[string]string{
		"node_modules/a/index.js": "a", "node_modules/b/c/d.js": "dd", "dist/app.js": "app", "dist/sub/x.map": "m",
		"coverage.txt": "cov", "src/main.go": "package main", "docs/a.md": "#",
	})
	if err := os.Symlink("a/index.js", filepath.Join(ws, "node_modules", "link.js")); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	var lines []string
	st, err := Pack(&buf, ws, []string{"node_modules", "dist/**/*.js", "*.txt"}, func(l string) { lines = append(lines, l) })
	if err != nil {
		t.Fatal(err)
	}
	if st.Files != 4 || st.Bytes != 1+2+3+3 || len(lines) != 0 {
		t.Fatalf("packed %+v, report %q", st, lines)
	}
	out := t.TempDir()
	ust, err := Unpack(&buf, out, Limits{}, func(l string) { lines = append(lines, l) })
	if err != nil || ust.Files != 4 || ust.Bytes != st.Bytes || len(lines) != 0 {
		t.Fatalf("unpacked %+v %v, report %q", ust, err, lines)
	}
	want := []string{"coverage.txt", "dist/app.js", "node_modules/a/index.js", "node_modules/b/c/d.js", "node_modules/link.js"}
	if got := list(t, out); !slices.Equal(got, want) {
		t.Fatalf("unpacked %q, want %q", got, want)
	}
	if b, err := os.ReadFile(filepath.Join(out, "node_modules", "link.js")); err != nil || string(b) != "a" {
		t.Fatalf("link: %q %v", b, err)
	}
}

// TestPackRefusesEscapes: globs and links that leave the workspace are refused and
// reported; nothing outside is packed.
func TestPackRefusesEscapes(t *testing.T) {
	ws := t.TempDir()
	write(t, ws, map[string]string{"cache/ok.txt": "ok"})
	for name, target := range map[string]string{"cache/root": "/", "cache/up": "../../..", "cache/passwd": "/etc/passwd"} {
		if err := os.Symlink(target, filepath.Join(ws, name)); err != nil {
			t.Fatal(err)
		}
	}
	var buf bytes.Buffer
	var lines []string
	st, err := Pack(&buf, ws, []string{"../../etc/passwd", "/etc", "cache"}, func(l string) { lines = append(lines, l) })
	if err != nil {
		t.Fatal(err)
	}
	if st.Files != 1 || st.Refused != 5 {
		t.Errorf("packed %+v", st)
	}
	report := strings.Join(lines, "\n")
	for _, want := range []string{
		`refused: fileNames "../../etc/passwd": leaves the workspace (..)`,
		`refused: fileNames "/etc": an absolute path`,
		`refused: cache/root is a symbolic link out of the workspace (-> /)`,
		`refused: cache/up is a symbolic link out of the workspace (-> ../../..)`,
		`refused: cache/passwd is a symbolic link out of the workspace (-> /etc/passwd)`,
	} {
		if !strings.Contains(report, want) {
			t.Errorf("report lacks %q:\n%s", want, report)
		}
	}
	out := t.TempDir()
	if _, err := Unpack(&buf, out, Limits{}, nil); err != nil {
		t.Fatal(err)
	}
	if got := list(t, out); !slices.Equal(got, []string{"cache/ok.txt"}) {
		t.Errorf("unpacked %q", got)
	}
}

// hostile builds a tar+zstd archive by hand.
func hostile(t *testing.T, hdrs []*tar.Header) *bytes.Buffer {
	var buf bytes.Buffer
	zw, _ := zstd.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, h := range hdrs {
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len("pwned"))
		}
		h.Mode = 0o644
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			tw.Write([]byte("pwned"))
		}
	}
	tw.Close()
	zw.Close()
	return &buf
}

// TestUnpackRefusesEscapes: entries with .., absolute names, links out and paths
// through links never write outside the directory.
func TestUnpackRefusesEscapes(t *testing.T) {
	base := t.TempDir()
	dest := filepath.Join(base, "ws", "restore")
	outside := filepath.Join(base, "outside")
	for _, d := range []string{dest, outside} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// A link already in the directory, pointing out (the workspace's own).
	if err := os.Symlink(outside, filepath.Join(dest, "pre")); err != nil {
		t.Fatal(err)
	}
	arc := hostile(t, []*tar.Header{
		{Name: "../../outside/dotdot", Typeflag: tar.TypeReg},
		{Name: "a/../../escape", Typeflag: tar.TypeReg},
		{Name: "/tmp/absolute", Typeflag: tar.TypeReg},
		{Name: "out", Typeflag: tar.TypeSymlink, Linkname: outside},
		{Name: "up", Typeflag: tar.TypeSymlink, Linkname: "../outside"},
		{Name: "pre/through", Typeflag: tar.TypeReg},
		{Name: "dev", Typeflag: tar.TypeChar},
		{Name: "fine.txt", Typeflag: tar.TypeReg},
	})
	var lines []string
	st, err := Unpack(arc, dest, Limits{}, func(l string) { lines = append(lines, l) })
	if err != nil {
		t.Fatal(err)
	}
	if st.Files != 1 || st.Refused != 7 {
		t.Errorf("unpacked %+v\n%s", st, strings.Join(lines, "\n"))
	}
	if got := list(t, outside); len(got) != 0 {
		t.Fatalf("written outside: %q", got)
	}
	if _, err := os.Lstat(filepath.Join(dest, "out")); err == nil {
		t.Error("a link out was made")
	}
	if b, err := os.ReadFile(filepath.Join(dest, "fine.txt")); err != nil || string(b) != "pwned" {
		t.Errorf("fine.txt: %q %v", b, err)
	}
	report := strings.Join(lines, "\n")
	for _, want := range []string{`refused: archive entry "../../outside/dotdot": leaves the workspace (..)`, `refused: archive entry "/tmp/absolute": an absolute path`,
		`is a symbolic link out of the directory (-> ../outside)`, `refused: archive entry "pre/through"`} {
		if !strings.Contains(report, want) {
			t.Errorf("report lacks %q:\n%s", want, report)
		}
	}
}

func TestUnpackLimits(t *testing.T) {
	ws := t.TempDir()
	write(t, ws, map[string]string{"d/a": strings.Repeat("x", 1000), "d/b": strings.Repeat("y", 1000)})
	var buf bytes.Buffer
	if _, err := Pack(&buf, ws, []string{"d"}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := Unpack(&buf, t.TempDir(), Limits{MaxBytes: 1500}, nil); err == nil || !strings.Contains(err.Error(), "over the limit") {
		t.Fatalf("unpack over the limit: %v", err)
	}
}

func TestMatch(t *testing.T) {
	for _, c := range []struct {
		pat, path string
		want      bool
	}{
		{"node_modules/**", "node_modules/a/b.js", true},
		{"node_modules", "node_modules/a/b.js", true},
		{"**/*.go", "a/b/c.go", true},
		{"**/*.go", "c.go", true},
		{"*.txt", "a/b.txt", false},
		{"dist/*.js", "dist/sub/x.js", false},
		{"dist/**/*.js", "dist/x.js", true},
	} {
		if got := matchAny([][]string{strings.Split(c.pat, "/")}, strings.Split(c.path, "/")); got != c.want {
			t.Errorf("%s ~ %s = %v", c.pat, c.path, got)
		}
	}
}

// TestPackRaceWithTheJob: a job's process that swaps a directory for a link to
// elsewhere after the walk saw a file in it gets the file refused, not read from
// elsewhere.
func TestPackRaceWithTheJob(t *testing.T) {
	base := t.TempDir()
	ws, outside := filepath.Join(base, "ws"), filepath.Join(base, "outside")
	write(t, ws, map[string]string{"d/secret": "the job's"})
	write(t, outside, map[string]string{"secret": "the runner's"})
	beforeOpen = func(rel string) {
		if rel == "d/secret" {
			os.RemoveAll(filepath.Join(ws, "d"))
			os.Symlink(outside, filepath.Join(ws, "d"))
		}
	}
	defer func() { beforeOpen = nil }()
	var buf bytes.Buffer
	var lines []string
	st, err := Pack(&buf, ws, []string{"d"}, func(l string) { lines = append(lines, l) })
	if err != nil {
		t.Fatal(err)
	}
	if st.Files != 0 || st.Refused != 1 || len(lines) != 1 || !strings.HasPrefix(lines[0], "refused: d/secret") {
		t.Fatalf("packed %+v, report %q", st, lines)
	}
	out := t.TempDir()
	if _, err := Unpack(&buf, out, Limits{}, nil); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(out, "d", "secret")); err == nil {
		t.Fatalf("packed %q from outside the workspace", b)
	}
}
