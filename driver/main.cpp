// clipshard entry point; everything lives in clipshard_driver (driver/cli.h).
#include "driver/cli.h"

int main(int argc, char** argv) { return clipshard::run_cli(argc, argv); }
