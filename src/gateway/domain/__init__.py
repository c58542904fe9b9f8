"""The person as CPR knows it, the CPR production day and the PNR rules.

Pure values shared by everyone who speaks about persons: the gateway renders
answers from them, and the simulators beside it (the mainframe emulator, its
synthetic register, the reference services) build and store them.
"""
