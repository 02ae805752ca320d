// Command project runs SimpleCI's project service alone. It takes the flags of `simpleci
// serve` that concern it: the common ones and the project service's own (see
// docs/operations.md); it links only the project service.
package main

import (
	"os"

	"github.com/simpleci/simpleci/libs/platform/node"
	"github.com/simpleci/simpleci/services/project/service"
)

func main() {
	os.Exit(node.Command{Name: "project", Components: []node.Component{&service.Component{}}}.Main())
}
