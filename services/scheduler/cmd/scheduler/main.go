// Command scheduler runs SimpleCI's scheduler service alone. It takes the flags of `simpleci
// serve` that concern it: the common ones and the scheduler service's own (see
// docs/operations.md); it links only the scheduler service.
package main

import (
	"os"

	"github.com/simpleci/simpleci/libs/platform/node"
	"github.com/simpleci/simpleci/services/scheduler/service"
)

func main() {
	os.Exit(node.Command{Name: "scheduler", Components: []node.Component{&service.Component{}}}.Main())
}
