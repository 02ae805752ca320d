module github.com/simpleci/simpleci/libs/forge

go 1.26
