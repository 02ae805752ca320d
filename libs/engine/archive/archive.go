// Package archive packs the files of a workspace that match a step's fileNames into a
// tar stream compressed with zstd, and unpacks such a stream into a directory, for the
// cache-files and store-files steps (issue 15). Both stream: memory stays bounded
// whatever the size of the files.
//
// Nothing leaves the workspace: globs with "..", absolute globs and symbolic links whose
// target lies outside the workspace are refused (each refusal is reported through the
// Report function, for the step log); unpacking goes through an os.Root of the target
// directory, so no entry (a name with "..", an absolute name, a path through a symbolic
// link) can write outside it, and entries of such names and links pointing out are
// refused before that.
package archive

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/klauspost/compress/zstd"
)

// Ext is the file extension of an archive.
const Ext = ".tar.zst"

// Stats count what was packed or unpacked.
type Stats struct {
	Files int   // regular files
	Bytes int64 // their contents, uncompressed
	// Refused counts the paths or entries refused (each reported).
	Refused int
}

// Report receives one line for the step log per refused path or entry.
type Report func(line string)

// Pack writes the files under root matching globs (relative, cleaned: see
// pipeline.CleanGlob) to w as tar+zstd. A glob matching a directory takes everything
// under it; ** matches any number of path elements. Symbolic links are kept when their
// target stays inside root; a link out is refused. Only regular files, directories and
// symbolic links are packed.
func Pack(w io.Writer, root string, globs []string, report Report) (Stats, error) {
	var st Stats
	if report == nil {
		report = func(string) {}
	}
	realRoot, err := filepath.EvalSymlinks(root)
	if err != nil {
		return st, err
	}
	var pats [][]string
	for _, g := range globs {
		if err := checkName(g); err != nil {
			report(fmt.Sprintf("refused: fileNames %q: %v", g, err))
			st.Refused++
			continue
		}
		pats = append(pats, strings.Split(path.Clean(g), "/"))
	}
	// Files are opened through an os.Root of the workspace: the job's processes may still
	// run while it is packed (a background service), and one that swaps a directory for a
	// link out between the walk and the open gets the file refused, never read.
	wsRoot, err := os.OpenRoot(realRoot)
	if err != nil {
		return st, err
	}
	defer wsRoot.Close()
	zw, err := zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1), zstd.WithLowerEncoderMem(true))
	if err != nil {
		return st, err
	}
	tw := tar.NewWriter(zw)
	buf := make([]byte, 256<<10)
	err = filepath.WalkDir(realRoot, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == realRoot {
			return nil
		}
		rel := filepath.ToSlash(p[len(realRoot)+1:])
		segs := strings.Split(rel, "/")
		matched := matchAny(pats, segs)
		if !matched {
			if d.IsDir() && !couldMatchBelow(pats, segs) {
				return filepath.SkipDir
			}
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		hdr := &tar.Header{Name: rel, Mode: int64(info.Mode().Perm()), ModTime: info.ModTime().Truncate(time.Second), Format: tar.FormatPAX}
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			if !linkInside(realRoot, rel, target) {
				report(fmt.Sprintf("refused: %s is a symbolic link out of the workspace (-> %s)", rel, target))
				st.Refused++
				return nil
			}
			hdr.Typeflag, hdr.Linkname = tar.TypeSymlink, target
			return tw.WriteHeader(hdr)
		case d.IsDir():
			hdr.Typeflag, hdr.Name = tar.TypeDir, rel+"/"
			return tw.WriteHeader(hdr)
		case info.Mode().IsRegular():
			if beforeOpen != nil {
				beforeOpen(rel)
			}
			f, err := wsRoot.Open(filepath.FromSlash(rel))
			if err != nil {
				report(fmt.Sprintf("refused: %s: %v", rel, err))
				st.Refused++
				return nil
			}
			defer f.Close()
			if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
				report(fmt.Sprintf("refused: %s changed while it was packed", rel))
				st.Refused++
				return nil
			}
			hdr.Typeflag, hdr.Size = tar.TypeReg, info.Size()
			if err := tw.WriteHeader(hdr); err != nil {
				return err
			}
			// A file that grows while it is packed: exactly its size at the header.
			n, err := io.CopyBuffer(tw, io.LimitReader(f, hdr.Size), buf)
			if err == nil && n < hdr.Size {
				err = fmt.Errorf("%s shrank while it was packed", rel)
			}
			st.Files++
			st.Bytes += n
			return err
		default:
			report(fmt.Sprintf("skipped: %s is not a regular file, directory or symbolic link", rel))
			return nil
		}
	})
	if err != nil {
		zw.Close()
		return st, err
	}
	if err := tw.Close(); err != nil {
		zw.Close()
		return st, err
	}
	return st, zw.Close()
}

// beforeOpen, when set (tests), runs between the walk's sight of a file and its open.
var beforeOpen func(rel string)

// checkName refuses a relative name that is absolute or climbs with "..".
func checkName(name string) error {
	switch {
	case name == "" || strings.ContainsRune(name, 0):
		return errors.New("empty or holds a NUL character")
	case strings.HasPrefix(name, "/") || filepath.IsAbs(name):
		return errors.New("an absolute path")
	}
	for _, el := range strings.Split(name, "/") {
		if el == ".." {
			return errors.New("leaves the workspace (..)")
		}
	}
	return nil
}

// linkInside reports whether a symbolic link at rel (relative to root) with target
// stays inside root. Absolute targets are refused even when they point inside: the
// workspace is elsewhere when the archive is unpacked.
func linkInside(root, rel, target string) bool {
	if target == "" || path.IsAbs(target) || filepath.IsAbs(target) {
		return false
	}
	joined := path.Join(path.Dir(rel), target)
	return joined != ".." && !strings.HasPrefix(joined, "../")
}

// matchAny reports whether segs, or a directory above it, matches a pattern.
func matchAny(pats [][]string, segs []string) bool {
	for _, p := range pats {
		for n := 1; n <= len(segs); n++ {
			if match(p, segs[:n]) {
				return true
			}
		}
	}
	return false
}

// match matches path elements against pattern elements; "**" matches any number.
func match(pat, segs []string) bool {
	if len(pat) == 0 {
		return len(segs) == 0
	}
	if pat[0] == "**" {
		for i := 0; i <= len(segs); i++ {
			if match(pat[1:], segs[i:]) {
				return true
			}
		}
		return false
	}
	if len(segs) == 0 {
		return false
	}
	if ok, _ := path.Match(pat[0], segs[0]); !ok {
		return false
	}
	return match(pat[1:], segs[1:])
}

// couldMatchBelow reports whether something under the directory segs may match.
func couldMatchBelow(pats [][]string, segs []string) bool {
	for _, p := range pats {
		if prefixMatch(p, segs) {
			return true
		}
	}
	return false
}

func prefixMatch(pat, segs []string) bool {
	if len(segs) == 0 {
		return len(pat) > 0
	}
	if len(pat) == 0 {
		return false
	}
	if pat[0] == "**" {
		return true
	}
	if ok, _ := path.Match(pat[0], segs[0]); !ok {
		return false
	}
	return prefixMatch(pat[1:], segs[1:])
}

// Limits bound what Unpack writes.
type Limits struct {
	// MaxBytes bounds the uncompressed contents of the files (a small archive may
	// inflate); zero means no limit.
	MaxBytes int64
	// MaxEntries bounds the number of entries; zero means no limit.
	MaxEntries int
	// Chown, when set, makes every entry written owned by UID and GID (a runner that
	// runs as root restoring into a job user's checkout).
	Chown    bool
	UID, GID int
}

// ErrLimit is returned when an archive passes its Limits.
var ErrLimit = errors.New("archive: over the limit")

// Unpack reads a tar+zstd stream into dest, which must exist. Entries named with ".."
// or absolutely, symbolic links whose target leaves dest, and entries of other types
// than files, directories and links are refused (reported, not written); everything
// is written through an os.Root of dest, which refuses any path that would resolve
// outside it. Existing files are replaced.
func Unpack(r io.Reader, dest string, lim Limits, report Report) (Stats, error) {
	var st Stats
	if report == nil {
		report = func(string) {}
	}
	root, err := os.OpenRoot(dest)
	if err != nil {
		return st, err
	}
	defer root.Close()
	zr, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true), zstd.WithDecoderMaxMemory(256<<20))
	if err != nil {
		return st, err
	}
	defer zr.Close()
	tr := tar.NewReader(zr)
	buf := make([]byte, 256<<10)
	entries := 0
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return st, nil
		}
		if err != nil {
			return st, fmt.Errorf("archive: %w", err)
		}
		entries++
		if lim.MaxEntries > 0 && entries > lim.MaxEntries {
			return st, fmt.Errorf("more than %d entries: %w", lim.MaxEntries, ErrLimit)
		}
		name := strings.TrimSuffix(hdr.Name, "/")
		if err := checkName(name); err != nil {
			report(fmt.Sprintf("refused: archive entry %q: %v", hdr.Name, err))
			st.Refused++
			continue
		}
		name = path.Clean(name)
		mode := fs.FileMode(hdr.Mode).Perm()
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := root.MkdirAll(name, 0o755); err != nil {
				report(fmt.Sprintf("refused: archive entry %q: %v", hdr.Name, err))
				st.Refused++
				continue
			}
			chown(root, name, lim)
		case tar.TypeSymlink:
			if !linkInside(dest, name, hdr.Linkname) {
				report(fmt.Sprintf("refused: archive entry %q is a symbolic link out of the directory (-> %s)", hdr.Name, hdr.Linkname))
				st.Refused++
				continue
			}
			if err := mkParent(root, name); err == nil {
				_ = root.Remove(name)
				err = root.Symlink(hdr.Linkname, name)
			}
			if err != nil {
				report(fmt.Sprintf("refused: archive entry %q: %v", hdr.Name, err))
				st.Refused++
				continue
			}
			chown(root, name, lim)
		case tar.TypeReg:
			if lim.MaxBytes > 0 && st.Bytes+hdr.Size > lim.MaxBytes {
				return st, fmt.Errorf("more than %d bytes: %w", lim.MaxBytes, ErrLimit)
			}
			n, err := writeFile(root, name, mode, tr, buf)
			if err != nil {
				if errors.Is(err, errRead) {
					return st, err
				}
				report(fmt.Sprintf("refused: archive entry %q: %v", hdr.Name, err))
				st.Refused++
				continue
			}
			chown(root, name, lim)
			st.Files++
			st.Bytes += n
		default:
			report(fmt.Sprintf("refused: archive entry %q of type %q", hdr.Name, hdr.Typeflag))
			st.Refused++
		}
	}
}

var errRead = errors.New("archive: read")

// chown gives name (and the directories MkdirAll made for it: they are the entry's
// parents, which the archive lists first) to lim's owner, without following a link.
func chown(root *os.Root, name string, lim Limits) {
	if lim.Chown {
		_ = root.Lchown(name, lim.UID, lim.GID)
	}
}

func mkParent(root *os.Root, name string) error {
	if dir := path.Dir(name); dir != "." {
		return root.MkdirAll(dir, 0o755)
	}
	return nil
}

// writeFile replaces name with the contents of r. A symbolic link at name is removed
// first, not followed.
func writeFile(root *os.Root, name string, mode fs.FileMode, r io.Reader, buf []byte) (int64, error) {
	if err := mkParent(root, name); err != nil {
		return 0, err
	}
	if fi, err := root.Lstat(name); err == nil && fi.Mode()&fs.ModeSymlink != 0 {
		if err := root.Remove(name); err != nil {
			return 0, err
		}
	}
	f, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode|0o200)
	if err != nil {
		return 0, err
	}
	n, err := io.CopyBuffer(f, r, buf)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return n, fmt.Errorf("%w: %v", errRead, err)
	}
	return n, nil
}
