package pipeline

import "time"

// Pipeline is a parsed, validated and compiled pipeline file.
type Pipeline struct {
	// File is the name the pipeline was parsed from, as given to Parse.
	File string
	// Inputs are the parameters of a manual trigger, in file order (inputs.go).
	Inputs []*Input
	// Concurrency groups the project's runs by a key (concurrency.go); nil when absent.
	Concurrency *Concurrency
	// Steps run in this order.
	Steps []*Step
}

// Step is one entry of "steps".
type Step struct {
	// Index is the 0-based position of the step in the file.
	Index int
	// Name is shown in the UI; unique within the pipeline.
	Name string
	// ID is the key of the step in the steps variable of conditions:
	// the "id" field, or a slug of the name (lower case, runs of other
	// characters replaced by "_", made unique with a numeric suffix).
	ID string
	// Condition decides whether the step runs. Never nil: an absent
	// condition compiles to success().
	Condition *Condition
	// Type is "" for a command step, TypeCacheFiles or TypeStoreFiles.
	Type string
	// Files says what a cache-files or store-files step stores; nil for
	// a command step.
	Files *Files
	// Run holds the commands as written, each run with sh -e -c, in
	// order. Never empty for a command step, empty for the others. They may hold {{ }} templates: run what
	// Commands returns, not these.
	Run []string
	// Env holds extra variables for this step as written (may be nil).
	// Values may hold {{ }} templates: use Environment.
	Env map[string]string
	// Timeout is the step's own limit; zero means only the job's limit applies.
	Timeout time.Duration
	// ContinueOnError makes a failure of this step not fail the run.
	ContinueOnError bool
	// WorkingDirectory is relative to the checkout, cleaned, never escaping
	// it; empty means the checkout itself.
	WorkingDirectory string
	// Pos is where the step's object starts in the file.
	Pos Position

	run []*Template          // Run compiled, index for index
	env map[string]*Template // Env compiled
}

// Position is a place in the pipeline file.
type Position struct {
	// Line is 1-based.
	Line int
	// Col is 1-based and counts Unicode characters, not bytes.
	Col int
}

// Step and run statuses as seen by conditions (steps.<id>.status and
// run.status).
const (
	StatusSucceeded = "succeeded"
	StatusFailed    = "failed"
	StatusTimedOut  = "timed_out"
	StatusCancelled = "cancelled"
	StatusSkipped   = "skipped"
)
