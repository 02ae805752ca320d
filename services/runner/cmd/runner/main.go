// Command runner runs SimpleCI's runner service alone. It takes the flags of `simpleci
// serve` that concern it: the common ones and the runner service's own (see
// docs/operations.md); it links only the runner service.
package main

import (
	"os"

	"github.com/simpleci/simpleci/libs/platform/node"
	"github.com/simpleci/simpleci/services/runner/service"
)

func main() {
	os.Exit(node.Command{Name: "runner", Components: []node.Component{&service.Component{}}}.Main())
}
