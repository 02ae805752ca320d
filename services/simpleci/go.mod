module github.com/simpleci/simpleci/services/simpleci

go 1.26
