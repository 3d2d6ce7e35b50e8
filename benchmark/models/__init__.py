"""The model interface every approximator implements, and building models from conf/model/*.yaml."""
