// Command simpleci runs SimpleCI: `simpleci dev` for everything in one process,
// `simpleci serve --service NAME` for services deployed apart.
package main

import (
	"os"

	"github.com/simpleci/simpleci/services/simpleci/node"
)

func main() { os.Exit(node.Main(os.Args[1:])) }
