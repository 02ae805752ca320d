//go:build !unix

package local

import "os/exec"

// setProcessGroup does nothing where process groups are not available;
// exec.CommandContext still kills git itself.
func setProcessGroup(*exec.Cmd) {}
