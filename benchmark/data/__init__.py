"""Where pairs come from: photos and their split, operator-made pairs and their cache, pair folders, FiveK layouts, operator-made variants, and the task that ties them together."""
