package redistest

import (
	"os/exec"
	"syscall"
)

// setProcAttr makes the server die with the test binary, even if the test
// is killed before its cleanup runs.
func setProcAttr(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
