// Package backup writes and restores a posthorn backup: one gzip-compressed
// tar file holding a consistent copy of the database (taken by the running
// server through SQLite's online backup API) and every other file of the
// data directory that mail depends on — the key sealing the DKIM keys, the
// VERP and unsubscribe keys (without them, bounces and unsubscribe links
// of mail already sent no longer verify), and the TLS certificate — with a
// MANIFEST.json at the end listing each file's size and SHA-256.
//
// Left out: the database's -wal and -shm files (the copy is
// self-contained), the lock file, the admin socket and this package's own
// temporary files. The configuration file lives outside the data directory
// and is not included: back it up with the rest of /etc.
//
// Restore extracts into a fresh staging directory beside the target,
// verifies every checksum and the database (intact, schema not newer than
// this posthorn), and only then moves the files into place, so a damaged
// or truncated backup changes nothing.
package backup

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"
)

// DBName is the database's file name in the data directory and the backup.
const DBName = "posthorn.db"

// ManifestName is the last entry of a backup.
const ManifestName = "MANIFEST.json"

// TempPrefix starts the names of temporary files in the data directory.
const TempPrefix = ".backup-"

// Manifest describes a backup.
type Manifest struct {
	Format        int       `json:"format"`
	CreatedAt     time.Time `json:"created_at"`
	Version       string    `json:"posthorn_version"`
	SchemaVersion int       `json:"schema_version"`
	Files         []File    `json:"files"`
}

// File is one file in a backup.
type File struct {
	Name   string `json:"name"` // slash-separated, relative to the data directory
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
	Mode   uint32 `json:"mode"`
}

// skip reports files of the data directory that a backup leaves out.
func skip(rel string) bool {
	base := path.Base(rel)
	switch rel {
	case DBName, DBName + "-wal", DBName + "-shm", DBName + "-journal", "lock", "admin.sock":
		return true
	}
	return strings.HasPrefix(base, TempPrefix)
}

// Write writes a backup of dataDir to w. snapshot must write a consistent
// copy of the database to the path it is given (a new file).
func Write(ctx context.Context, w io.Writer, dataDir, version string, schema int, snapshot func(ctx context.Context, path string) error) error {
	tmp, err := os.MkdirTemp(dataDir, TempPrefix)
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	defer os.RemoveAll(tmp)
	dbCopy := filepath.Join(tmp, DBName)
	if err := snapshot(ctx, dbCopy); err != nil {
		return err
	}
	zw, _ := gzip.NewWriterLevel(w, gzip.BestSpeed)
	tw := tar.NewWriter(zw)
	m := Manifest{Format: 1, CreatedAt: time.Now().UTC(), Version: version, SchemaVersion: schema}
	add := func(src, name string) error {
		f, err := os.Open(src)
		if err != nil {
			return err
		}
		defer f.Close()
		fi, err := f.Stat()
		if err != nil {
			return err
		}
		hdr := &tar.Header{Name: name, Mode: int64(fi.Mode().Perm()), Size: fi.Size(), ModTime: fi.ModTime(), Typeflag: tar.TypeReg}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		h := sha256.New()
		n, err := io.Copy(io.MultiWriter(tw, h), f)
		if err != nil {
			return err
		}
		if n != fi.Size() {
			return fmt.Errorf("%s changed size while it was read", src)
		}
		m.Files = append(m.Files, File{Name: name, Size: n, SHA256: hex.EncodeToString(h.Sum(nil)), Mode: uint32(fi.Mode().Perm())})
		return nil
	}
	if err := add(dbCopy, DBName); err != nil {
		return fmt.Errorf("backup: database copy: %w", err)
	}
	err = filepath.WalkDir(dataDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dataDir, p)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			if rel != "." && strings.HasPrefix(d.Name(), TempPrefix) {
				return fs.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() || skip(rel) {
			return nil
		}
		return add(p, rel)
	})
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	mb, _ := json.MarshalIndent(m, "", "  ")
	if err := tw.WriteHeader(&tar.Header{Name: ManifestName, Mode: 0o600, Size: int64(len(mb)), ModTime: m.CreatedAt, Typeflag: tar.TypeReg}); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	if _, err := tw.Write(mb); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	return nil
}

// ErrNotEmpty is returned by Restore for a data directory that already
// holds files, unless forced.
var ErrNotEmpty = errors.New("data directory is not empty")

// Restore extracts the backup r into dataDir, which must not hold files
// (force: its posthorn files are replaced; the server must be stopped).
// check verifies the extracted database before anything is moved into
// place (posthorn passes the store's Inspect). It returns the manifest.
func Restore(r io.Reader, dataDir string, force bool, check func(dbPath string) error) (*Manifest, error) {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, err
	}
	if err := os.Chmod(dataDir, 0o700); err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(dataDir)
	if err != nil {
		return nil, err
	}
	n := 0
	for _, e := range entries {
		if e.Name() != "lock" { // the caller's own lock
			n++
		}
	}
	if n > 0 && !force {
		return nil, fmt.Errorf("%w: %s holds %d entries; restore into an empty directory, or pass --force to replace its posthorn files", ErrNotEmpty, dataDir, n)
	}
	stage, err := os.MkdirTemp(dataDir, TempPrefix)
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(stage)
	m, err := extract(r, stage)
	if err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	if check != nil {
		if err := check(filepath.Join(stage, DBName)); err != nil {
			return nil, fmt.Errorf("restore: %w", err)
		}
	}
	// The old database's WAL must not be replayed over the restored file.
	for _, f := range []string{DBName + "-wal", DBName + "-shm", DBName + "-journal"} {
		if err := os.Remove(filepath.Join(dataDir, f)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
	}
	for _, f := range m.Files {
		dst := filepath.Join(dataDir, filepath.FromSlash(f.Name))
		if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
			return nil, err
		}
		if err := os.Rename(filepath.Join(stage, filepath.FromSlash(f.Name)), dst); err != nil {
			return nil, err
		}
	}
	return m, syncDir(dataDir)
}

// Verify reads a whole backup and checks it against its manifest, writing
// nothing.
func Verify(r io.Reader) (*Manifest, error) { return extract(r, "") }

// extract unpacks a backup into dir ("": nowhere, only check) and checks
// it against its manifest.
func extract(r io.Reader, dir string) (*Manifest, error) {
	zr, err := gzip.NewReader(r)
	if err != nil {
		return nil, fmt.Errorf("not a posthorn backup (gzip): %w", err)
	}
	tr := tar.NewReader(zr)
	type got struct {
		size int64
		sum  string
	}
	files := map[string]got{}
	var m *Manifest
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("reading backup (truncated?): %w", err)
		}
		name := path.Clean(hdr.Name)
		if hdr.Typeflag != tar.TypeReg || name == "." || strings.HasPrefix(name, "../") || path.IsAbs(name) || name == ".." {
			return nil, fmt.Errorf("unexpected entry %q in backup", hdr.Name)
		}
		if name == ManifestName {
			m = &Manifest{}
			if err := json.NewDecoder(io.LimitReader(tr, 1<<20)).Decode(m); err != nil {
				return nil, fmt.Errorf("manifest: %w", err)
			}
			continue
		}
		if _, dup := files[name]; dup {
			return nil, fmt.Errorf("entry %q twice in backup", name)
		}
		h := sha256.New()
		n, err := copyOut(dir, name, io.TeeReader(tr, h))
		if err != nil {
			return nil, fmt.Errorf("extract %s: %w", name, err)
		}
		files[name] = got{n, hex.EncodeToString(h.Sum(nil))}
	}
	if m == nil {
		return nil, errors.New("backup has no manifest (truncated, or not a posthorn backup)")
	}
	if m.Format != 1 {
		return nil, fmt.Errorf("backup format %d is not known to this posthorn", m.Format)
	}
	if len(files) != len(m.Files) {
		return nil, fmt.Errorf("backup holds %d files, its manifest lists %d", len(files), len(m.Files))
	}
	hasDB := false
	for _, f := range m.Files {
		g, ok := files[f.Name]
		if !ok || g.size != f.Size || g.sum != f.SHA256 {
			return nil, fmt.Errorf("%s does not match the manifest (damaged backup)", f.Name)
		}
		hasDB = hasDB || f.Name == DBName
	}
	if !hasDB {
		return nil, errors.New("backup holds no database")
	}
	return m, nil
}

// copyOut writes one entry to dir/name (fsync'd), or only reads it when
// dir is "".
func copyOut(dir, name string, r io.Reader) (int64, error) {
	if dir == "" {
		return io.Copy(io.Discard, r)
	}
	dst := filepath.Join(dir, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return 0, err
	}
	f, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return 0, err
	}
	n, err := io.Copy(f, r)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return n, err
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
