// Package tlscert serves the certificate of posthorn's TLS listeners from
// files and picks up a replaced certificate without a restart: the
// listeners' tls.Config asks GetCertificate at each handshake, so sessions
// already open keep the certificate they started with and new ones get
// the new one.
//
// The files are checked every poll interval (modification time and size of
// both files); Reload re-reads them at once (for SIGHUP). A pair that
// does not load (a key written before its certificate, a half-written
// file) leaves the old certificate in place: it is logged and tried again
// at the next check.
//
// What the tests prove (tlscert_test.go): a changed pair is served after a
// check, a broken pair keeps the old certificate, and Reload works
// without a change of modification time.
package tlscert

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// Reloader holds the current certificate of a cert/key file pair.
type Reloader struct {
	certPath, keyPath string
	log               *slog.Logger

	mu    sync.Mutex
	cert  *tls.Certificate
	stamp [2]fileStamp

	stop chan struct{}
	done chan struct{}
}

type fileStamp struct {
	mod  time.Time
	size int64
}

// Load reads the pair; an error here is a configuration error.
func Load(certPath, keyPath string, log *slog.Logger) (*Reloader, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Reloader{certPath: certPath, keyPath: keyPath, log: log}
	if err := r.Reload(); err != nil {
		return nil, err
	}
	return r, nil
}

func stamp(path string) (fileStamp, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}, err
	}
	return fileStamp{mod: fi.ModTime(), size: fi.Size()}, nil
}

// Reload reads the files now and, if they load, serves the new pair.
func (r *Reloader) Reload() error {
	cs, err1 := stamp(r.certPath)
	ks, err2 := stamp(r.keyPath)
	if err := errors.Join(err1, err2); err != nil {
		return fmt.Errorf("tls certificate: %w", err)
	}
	cert, err := tls.LoadX509KeyPair(r.certPath, r.keyPath)
	if err != nil {
		return fmt.Errorf("tls certificate %s: %w", r.certPath, err)
	}
	r.mu.Lock()
	r.cert, r.stamp = &cert, [2]fileStamp{cs, ks}
	r.mu.Unlock()
	return nil
}

// Check reloads the pair if either file changed since the last load; it
// reports whether a new certificate is now served.
func (r *Reloader) Check() (bool, error) {
	cs, err1 := stamp(r.certPath)
	ks, err2 := stamp(r.keyPath)
	if err := errors.Join(err1, err2); err != nil {
		return false, err
	}
	r.mu.Lock()
	same := r.stamp == [2]fileStamp{cs, ks}
	r.mu.Unlock()
	if same {
		return false, nil
	}
	if err := r.Reload(); err != nil {
		return false, err
	}
	return true, nil
}

// GetCertificate is for tls.Config.
func (r *Reloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cert, nil
}

// Certificate is the pair served now.
func (r *Reloader) Certificate() *tls.Certificate {
	c, _ := r.GetCertificate(nil)
	return c
}

// Start checks the files every interval until Stop.
func (r *Reloader) Start(interval time.Duration) {
	r.stop, r.done = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(r.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		var lastErr string
		for {
			select {
			case <-r.stop:
				return
			case <-t.C:
			}
			changed, err := r.Check()
			switch {
			case err != nil:
				if err.Error() != lastErr { // once per distinct problem, not every poll
					r.log.Warn("tls certificate changed but does not load; keeping the old one", "cert", r.certPath, "err", err)
				}
				lastErr = err.Error()
			case changed:
				lastErr = ""
				leaf := r.Certificate().Leaf
				r.log.Info("tls certificate reloaded", "cert", r.certPath, "subject", leaf.Subject.String(), "not_after", leaf.NotAfter)
			}
		}
	}()
}

// Stop ends the polling.
func (r *Reloader) Stop() {
	if r.stop != nil {
		close(r.stop)
		<-r.done
		r.stop = nil
	}
}
