package adminclient

import (
	"fmt"
	"net"
	"syscall"
)

// checkPeer asks the kernel which user serves the socket (SO_PEERCRED):
// unlike the file checks, this cannot be raced by swapping the file
// between the check and the connect.
func checkPeer(c net.Conn, path string) error {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return nil
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return fmt.Errorf("admin socket %s: %w", path, err)
	}
	var cred *syscall.Ucred
	var credErr error
	if err := raw.Control(func(fd uintptr) {
		cred, credErr = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	}); err != nil {
		return fmt.Errorf("admin socket %s: %w", path, err)
	}
	if credErr != nil {
		return fmt.Errorf("admin socket %s: peer credentials: %w", path, credErr)
	}
	if !trustedUID(cred.Uid) {
		return &UnsafeSocketError{path, fmt.Sprintf("the process serving it (pid %d) runs as uid %d, not as you or root", cred.Pid, cred.Uid)}
	}
	return nil
}
