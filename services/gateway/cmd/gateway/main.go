// Command gateway runs SimpleCI's gateway service alone; it takes the flags of
// `simpleci serve` (see docs/operations.md).
package main

import (
	"os"

	"github.com/simpleci/simpleci/services/simpleci/node"
)

func main() { os.Exit(node.Main(append([]string{"serve", "--service", "gateway"}, os.Args[1:]...))) }
