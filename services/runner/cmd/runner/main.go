// Command runner runs SimpleCI's runner service alone; it takes the flags of
// `simpleci serve` (see docs/operations.md).
package main

import (
	"os"

	"github.com/simpleci/simpleci/services/simpleci/node"
)

func main() { os.Exit(node.Main(append([]string{"serve", "--service", "runner"}, os.Args[1:]...))) }
