"""Image-processing maths shared by operators, baselines and models: colour and luma definitions,
Gaussian/Laplacian pyramids, bilateral-grid geometry. One name per definition."""
