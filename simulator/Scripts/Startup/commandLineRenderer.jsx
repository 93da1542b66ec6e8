// Command line renderer for After Effects.
//
// AE RENDER MANAGER SIMULATOR: a stand-in for the file of this name that
// Adobe After Effects ships in "Support Files/Scripts/Startup". nexrender
// reads it, backs it up to Backup.Scripts/ and replaces it with its patched
// version on every start, so it must exist beside the simulated aerender.
// Nothing executes it.
//
// This function constructs an AECommandLineRenderer object.
// One and only one of these will be created to perform rendering tasks
// at the end of this file.
function AECommandLineRenderer() {
    this.inArgs = null;
    this.in_project_path = null;
    this.in_comp_name = null;
    this.in_output_path = null;
}

var gAECommandLineRenderer = new AECommandLineRenderer();
