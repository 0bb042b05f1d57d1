from benchbench.cli import main

main(prog_name="benchbench")
