// Package initramfs builds the guest's initramfs: a gzip-compressed cpio
// archive in the "newc" format that the Linux kernel unpacks as its first
// root file system.
//
// The archive is reproducible: entries are written in a fixed order with
// fixed owners and times, so the same inputs give the same bytes, and so
// the same SEV-SNP launch measurement.
package initramfs

import (
	"bufio"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strings"
)

// File is one regular file of the archive.
type File struct {
	// Path is the absolute path inside the guest, such as /init.
	Path string
	// Source is the file on the host whose bytes the entry carries.
	Source string
	Mode   os.FileMode
}

// Spec is the content of an initramfs: files plus the folders they need.
type Spec struct {
	Files []File
	// Dirs are extra empty folders, such as /proc.
	Dirs []string
	// Symlinks maps a path inside the guest to its target.
	Symlinks map[string]string
}

// Write writes the archive for s to w.
func Write(w io.Writer, s Spec) error {
	gz, err := gzip.NewWriterLevel(w, gzip.BestCompression)
	if err != nil {
		return err
	}
	bw := bufio.NewWriter(gz)
	cw := &cpioWriter{w: bw, ino: 1}

	dirs := map[string]bool{}
	addDir := func(p string) {
		for p != "/" && p != "." && p != "" {
			dirs[p] = true
			p = path.Dir(p)
		}
	}
	for _, d := range s.Dirs {
		addDir(path.Clean(d))
	}
	for _, f := range s.Files {
		addDir(path.Dir(path.Clean(f.Path)))
	}
	for l := range s.Symlinks {
		addDir(path.Dir(path.Clean(l)))
	}
	sortedDirs := make([]string, 0, len(dirs))
	for d := range dirs {
		sortedDirs = append(sortedDirs, d)
	}
	sort.Strings(sortedDirs)
	for _, d := range sortedDirs {
		if err := cw.header(strings.TrimPrefix(d, "/"), 0o040755, 0, 2); err != nil {
			return err
		}
	}

	files := append([]File(nil), s.Files...)
	sort.Slice(files, func(i, j int) bool { return files[i].Path < files[j].Path })
	for _, f := range files {
		if err := cw.file(f); err != nil {
			return err
		}
	}

	links := make([]string, 0, len(s.Symlinks))
	for l := range s.Symlinks {
		links = append(links, l)
	}
	sort.Strings(links)
	for _, l := range links {
		target := s.Symlinks[l]
		if err := cw.header(strings.TrimPrefix(path.Clean(l), "/"), 0o120777, int64(len(target)), 1); err != nil {
			return err
		}
		if err := cw.data(strings.NewReader(target), int64(len(target))); err != nil {
			return err
		}
	}

	if err := cw.header("TRAILER!!!", 0, 0, 1); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	return gz.Close()
}

// WriteFile writes the archive for s to the file at name, replacing it
// only once the whole archive is written.
func WriteFile(name string, s Spec) error {
	tmp := name + ".partial"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	if err := Write(f, s); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, name)
}

type cpioWriter struct {
	w   io.Writer
	ino int
	off int64
}

func (c *cpioWriter) file(f File) error {
	src, err := os.Open(f.Source)
	if err != nil {
		return fmt.Errorf("initramfs: %s: %w", f.Path, err)
	}
	defer src.Close()
	st, err := src.Stat()
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("initramfs: %s: %s is not a regular file", f.Path, f.Source)
	}
	mode := f.Mode.Perm()
	if mode == 0 {
		mode = st.Mode().Perm()
	}
	if err := c.header(strings.TrimPrefix(path.Clean(f.Path), "/"), 0o100000|uint32(mode), st.Size(), 1); err != nil {
		return err
	}
	return c.data(src, st.Size())
}

// header writes a newc header (magic 070701, 13 eight-digit hex fields),
// the NUL-terminated name, and padding to a 4-byte boundary. Owner and
// times are zero so archives are reproducible.
func (c *cpioWriter) header(name string, mode uint32, size int64, nlink int) error {
	ino := c.ino
	c.ino++
	hdr := fmt.Sprintf("070701%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x",
		ino, mode, 0, 0, nlink, 0, size, 0, 0, 0, 0, len(name)+1, 0)
	if err := c.write([]byte(hdr + name + "\x00")); err != nil {
		return err
	}
	return c.pad()
}

func (c *cpioWriter) data(r io.Reader, size int64) error {
	n, err := io.Copy(c.w, io.LimitReader(r, size))
	c.off += n
	if err != nil {
		return err
	}
	if n != size {
		return fmt.Errorf("initramfs: file shrank while being read: %d of %d bytes", n, size)
	}
	return c.pad()
}

func (c *cpioWriter) write(b []byte) error {
	n, err := c.w.Write(b)
	c.off += int64(n)
	return err
}

func (c *cpioWriter) pad() error {
	if r := c.off % 4; r != 0 {
		return c.write(make([]byte, 4-r))
	}
	return nil
}
