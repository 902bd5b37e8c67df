# fish completion for qbsd. Generated from qbsd's command tree by completions/generate.py:
# do not edit; regenerate with `python completions/generate.py completions/`.
# Use: copy it to ~/.config/fish/completions/qbsd.fish

# No file names unless a subcommand or an option asks for them.
complete -c qbsd -f

complete -c qbsd -n __fish_use_subcommand -l debug -d 'Show tracebacks for errors'
complete -c qbsd -n __fish_use_subcommand -l install-completion -d 'Install completion for the current shell'
complete -c qbsd -n __fish_use_subcommand -l show-completion -d 'Show completion for the current shell, to copy it or customize the installation'
complete -c qbsd -n __fish_use_subcommand -l help -s h -d 'Show this message and exit'
complete -c qbsd -n __fish_use_subcommand -a tag -d 'Tag audio files: one JSON line per file with its strongest tags'
complete -c qbsd -n __fish_use_subcommand -a index -d 'Index folders: analyse new or changed files, forget deleted ones, rebuild the search index'
complete -c qbsd -n __fish_use_subcommand -a similar -d 'Songs in the index most like QUERIES together (cosine similarity of tag vectors)'
complete -c qbsd -n __fish_use_subcommand -a search -d 'Songs in the index that best fit WORDS (mean of their scores for those tags)'
complete -c qbsd -n __fish_use_subcommand -a path -d 'A playlist from START to END moving evenly between them, a song nearest each step'
complete -c qbsd -n __fish_use_subcommand -a map -d 'Draw the library as one HTML page: every song a point on the mood plane and on a map of its tags'
complete -c qbsd -n __fish_use_subcommand -a cluster -d 'Group the library into playlists of songs that sound alike, each named by its tags'
complete -c qbsd -n __fish_use_subcommand -a tags -d 'The model\'s vocabulary, one tag per line'
complete -c qbsd -n __fish_use_subcommand -a train -d 'Train the tag model on labelled audio and export it as ONNX (needs the train extra)'
complete -c qbsd -n __fish_use_subcommand -a evaluate -d 'Artist-grouped 5-fold cross-validation of baselines, CNN recipes and blends (resumable)'

# qbsd tag
complete -c qbsd -n '__fish_seen_subcommand_from tag' -l top -s k -x -d 'Tags per file; 0 lists every tag'
complete -c qbsd -n '__fish_seen_subcommand_from tag' -l vector -d 'Add every score, in vocabulary order, as "vector"'
complete -c qbsd -n '__fish_seen_subcommand_from tag' -l jobs -s j -x -d 'Files analysed in parallel; 0 (the default): all cores'
complete -c qbsd -n '__fish_seen_subcommand_from tag' -l full -d 'Analyse whole files; by default at most 4 evenly spread 30 s segments (2 min) per file'
complete -c qbsd -n '__fish_seen_subcommand_from tag' -l timeout -x -d 'Give up on a file after this long (it fails as "timed out"); 0: no limit'
complete -c qbsd -n '__fish_seen_subcommand_from tag' -l format -s f -x -a 'auto json table m3u' -d 'Output format; auto is a table on a terminal, JSON lines when piped'
complete -c qbsd -n '__fish_seen_subcommand_from tag' -l model -r -F -d 'A shipped model: fast (the default) or accurate (slower, better tags; `qbsd tags -v` says which is which), or an ONNX model file; if not given, $QBSD_MODEL, else the index\'s own model, else fast'
complete -c qbsd -n '__fish_seen_subcommand_from tag' -l cluster -x -d 'Analyse on the workers of this Dask scheduler (tcp://host:8786, else $QBSD_CLUSTER; needs the cluster extra, and the files at the same paths on every worker); --jobs is then ignored'
complete -c qbsd -n '__fish_seen_subcommand_from tag' -l help -s h -d 'Show this message and exit'
complete -c qbsd -n '__fish_seen_subcommand_from tag' -F

# qbsd index
complete -c qbsd -n '__fish_seen_subcommand_from index' -l from-jsonl -r -F -d 'Ingest `qbsd tag --vector` output (a file or \'-\') instead of analysing'
complete -c qbsd -n '__fish_seen_subcommand_from index' -l errors -d 'List the files that failed, with their reasons, and stop'
complete -c qbsd -n '__fish_seen_subcommand_from index' -l duplicates -d 'List the groups of files in the index that are one recording, and stop'
complete -c qbsd -n '__fish_seen_subcommand_from index' -l rebuild -d 'Start the index afresh (after a model change or damage)'
complete -c qbsd -n '__fish_seen_subcommand_from index' -l jobs -s j -x -d 'Files analysed in parallel; 0 (the default): all cores'
complete -c qbsd -n '__fish_seen_subcommand_from index' -l full -d 'Analyse whole files; by default at most 4 evenly spread 30 s segments (2 min) per file'
complete -c qbsd -n '__fish_seen_subcommand_from index' -l timeout -x -d 'Give up on a file after this long (it fails as "timed out"); 0: no limit'
complete -c qbsd -n '__fish_seen_subcommand_from index' -l index -s i -x -a '(__fish_complete_directories (commandline -ct))' -d 'Index folder; if not given, $XDG_DATA_HOME/qbsd, i.e'
complete -c qbsd -n '__fish_seen_subcommand_from index' -l model -r -F -d 'A shipped model: fast (the default) or accurate (slower, better tags; `qbsd tags -v` says which is which), or an ONNX model file; if not given, $QBSD_MODEL, else the index\'s own model, else fast'
complete -c qbsd -n '__fish_seen_subcommand_from index' -l cluster -x -d 'Analyse on the workers of this Dask scheduler (tcp://host:8786, else $QBSD_CLUSTER; needs the cluster extra, and the files at the same paths on every worker); --jobs is then ignored'
complete -c qbsd -n '__fish_seen_subcommand_from index' -l format -s f -x -a 'auto json table m3u' -d 'Output format of --errors and --duplicates; auto is plain lines on a terminal, JSON lines when piped'
complete -c qbsd -n '__fish_seen_subcommand_from index' -l help -s h -d 'Show this message and exit'
complete -c qbsd -n '__fish_seen_subcommand_from index' -a '(__fish_complete_directories (commandline -ct))'

# qbsd similar
complete -c qbsd -n '__fish_seen_subcommand_from similar' -l not -x -d 'A song (or an m3u playlist of songs) the list should move away from (repeatable); never listed'
complete -c qbsd -n '__fish_seen_subcommand_from similar' -l tag -x -d 'A tag word to move towards, as search reads it: `calm`, `mood:calm` (repeatable)'
complete -c qbsd -n '__fish_seen_subcommand_from similar' -l top -s k -x -d 'How many songs'
complete -c qbsd -n '__fish_seen_subcommand_from similar' -l per-artist -x -d 'At most N songs of one artist in the list; 0: no cap'
complete -c qbsd -n '__fish_seen_subcommand_from similar' -l per-album -x -d 'At most N songs of one album in the list; 0: no cap'
complete -c qbsd -n '__fish_seen_subcommand_from similar' -l keep-duplicates -d 'Also list copies and re-encodes of one recording (same vector, or same artist and title)'
complete -c qbsd -n '__fish_seen_subcommand_from similar' -l explain -d 'Give the three tags that most make each song match ("because")'
complete -c qbsd -n '__fish_seen_subcommand_from similar' -l include-self -d 'Keep the query songs in the results'
complete -c qbsd -n '__fish_seen_subcommand_from similar' -l exact -d 'Exact cosine search instead of the Annoy index'
complete -c qbsd -n '__fish_seen_subcommand_from similar' -l full -d 'Analyse whole files; by default at most 4 evenly spread 30 s segments (2 min) per file'
complete -c qbsd -n '__fish_seen_subcommand_from similar' -l format -s f -x -a 'auto json table m3u' -d 'Output format; auto is a table on a terminal, JSON lines when piped'
complete -c qbsd -n '__fish_seen_subcommand_from similar' -l index -s i -x -a '(__fish_complete_directories (commandline -ct))' -d 'Index folder; if not given, $XDG_DATA_HOME/qbsd, i.e'
complete -c qbsd -n '__fish_seen_subcommand_from similar' -l model -r -F -d 'A shipped model: fast (the default) or accurate (slower, better tags; `qbsd tags -v` says which is which), or an ONNX model file; if not given, $QBSD_MODEL, else the index\'s own model, else fast'
complete -c qbsd -n '__fish_seen_subcommand_from similar' -l help -s h -d 'Show this message and exit'
complete -c qbsd -n '__fish_seen_subcommand_from similar' -F

# qbsd search
complete -c qbsd -n '__fish_seen_subcommand_from search' -l like -x -d 'A song the list should also be like (repeatable): the same query as similar --tag'
complete -c qbsd -n '__fish_seen_subcommand_from search' -l not -x -d 'A song (or an m3u playlist of songs) the list should move away from (repeatable); never listed'
complete -c qbsd -n '__fish_seen_subcommand_from search' -l top -s k -x -d 'How many songs'
complete -c qbsd -n '__fish_seen_subcommand_from search' -l per-artist -x -d 'At most N songs of one artist in the list; 0: no cap'
complete -c qbsd -n '__fish_seen_subcommand_from search' -l per-album -x -d 'At most N songs of one album in the list; 0: no cap'
complete -c qbsd -n '__fish_seen_subcommand_from search' -l keep-duplicates -d 'Also list copies and re-encodes of one recording (same vector, or same artist and title)'
complete -c qbsd -n '__fish_seen_subcommand_from search' -l explain -d 'Give the three tags that most make each song match ("because")'
complete -c qbsd -n '__fish_seen_subcommand_from search' -l full -d 'Analyse whole files; by default at most 4 evenly spread 30 s segments (2 min) per file'
complete -c qbsd -n '__fish_seen_subcommand_from search' -l format -s f -x -a 'auto json table m3u' -d 'Output format; auto is a table on a terminal, JSON lines when piped'
complete -c qbsd -n '__fish_seen_subcommand_from search' -l index -s i -x -a '(__fish_complete_directories (commandline -ct))' -d 'Index folder; if not given, $XDG_DATA_HOME/qbsd, i.e'
complete -c qbsd -n '__fish_seen_subcommand_from search' -l model -r -F -d 'A shipped model: fast (the default) or accurate (slower, better tags; `qbsd tags -v` says which is which), or an ONNX model file; if not given, $QBSD_MODEL, else the index\'s own model, else fast'
complete -c qbsd -n '__fish_seen_subcommand_from search' -l help -s h -d 'Show this message and exit'

# qbsd path
complete -c qbsd -n '__fish_seen_subcommand_from path' -l steps -s n -x -d 'Songs in the playlist, START and END included'
complete -c qbsd -n '__fish_seen_subcommand_from path' -l per-artist -x -d 'At most N songs of one artist in the list; 0: no cap'
complete -c qbsd -n '__fish_seen_subcommand_from path' -l per-album -x -d 'At most N songs of one album in the list; 0: no cap'
complete -c qbsd -n '__fish_seen_subcommand_from path' -l keep-duplicates -d 'Also list copies and re-encodes of one recording (same vector, or same artist and title)'
complete -c qbsd -n '__fish_seen_subcommand_from path' -l explain -d 'Give the three tags that most make each song match ("because")'
complete -c qbsd -n '__fish_seen_subcommand_from path' -l full -d 'Analyse whole files; by default at most 4 evenly spread 30 s segments (2 min) per file'
complete -c qbsd -n '__fish_seen_subcommand_from path' -l format -s f -x -a 'auto json table m3u' -d 'Output format; auto is a table on a terminal, JSON lines when piped'
complete -c qbsd -n '__fish_seen_subcommand_from path' -l index -s i -x -a '(__fish_complete_directories (commandline -ct))' -d 'Index folder; if not given, $XDG_DATA_HOME/qbsd, i.e'
complete -c qbsd -n '__fish_seen_subcommand_from path' -l model -r -F -d 'A shipped model: fast (the default) or accurate (slower, better tags; `qbsd tags -v` says which is which), or an ONNX model file; if not given, $QBSD_MODEL, else the index\'s own model, else fast'
complete -c qbsd -n '__fish_seen_subcommand_from path' -l help -s h -d 'Show this message and exit'
complete -c qbsd -n '__fish_seen_subcommand_from path' -F

# qbsd map
complete -c qbsd -n '__fish_seen_subcommand_from map' -l output -s o -r -F -d 'Write the page to this file instead of stdout'
complete -c qbsd -n '__fish_seen_subcommand_from map' -l index -s i -x -a '(__fish_complete_directories (commandline -ct))' -d 'Index folder; if not given, $XDG_DATA_HOME/qbsd, i.e'
complete -c qbsd -n '__fish_seen_subcommand_from map' -l help -s h -d 'Show this message and exit'

# qbsd cluster
complete -c qbsd -n '__fish_seen_subcommand_from cluster' -l count -s n -x -d 'How many clusters (playlists)'
complete -c qbsd -n '__fish_seen_subcommand_from cluster' -l min-size -x -d 'Dissolve clusters of fewer songs into their neighbours'
complete -c qbsd -n '__fish_seen_subcommand_from cluster' -l max-size -x -d 'List at most N songs per cluster, the most central; 0: all'
complete -c qbsd -n '__fish_seen_subcommand_from cluster' -l per-artist -x -d 'At most N songs of one artist in the list; 0: no cap'
complete -c qbsd -n '__fish_seen_subcommand_from cluster' -l explain -d 'Give how strongly each tag marks each cluster'
complete -c qbsd -n '__fish_seen_subcommand_from cluster' -l output -s o -r -F -d 'Write one m3u playlist per cluster into this folder'
complete -c qbsd -n '__fish_seen_subcommand_from cluster' -l format -s f -x -a 'auto json table m3u' -d 'Output format; auto is a table on a terminal, JSON lines when piped'
complete -c qbsd -n '__fish_seen_subcommand_from cluster' -l index -s i -x -a '(__fish_complete_directories (commandline -ct))' -d 'Index folder; if not given, $XDG_DATA_HOME/qbsd, i.e'
complete -c qbsd -n '__fish_seen_subcommand_from cluster' -l help -s h -d 'Show this message and exit'

# qbsd tags
complete -c qbsd -n '__fish_seen_subcommand_from tags' -l verbose -s v -d 'Also print the model id and tag count (on stderr)'
complete -c qbsd -n '__fish_seen_subcommand_from tags' -l model -r -F -d 'A shipped model: fast (the default) or accurate (slower, better tags; `qbsd tags -v` says which is which), or an ONNX model file; if not given, $QBSD_MODEL, else the index\'s own model, else fast'
complete -c qbsd -n '__fish_seen_subcommand_from tags' -l help -s h -d 'Show this message and exit'

# qbsd train
complete -c qbsd -n '__fish_seen_subcommand_from train' -l data -r -F -d 'A 4Q folder, a CAL500 folder or a path,tags CSV'
complete -c qbsd -n '__fish_seen_subcommand_from train' -l layout -x -d 'moods4q, cal500 or csv'
complete -c qbsd -n '__fish_seen_subcommand_from train' -l recipe -x -d 'Training recipe, ensemble or blend (see the model card): the shipped fast model is cnn-wide-corpus-view-student-bands with --int8-convolutions (needs the teachers\' corpus), the accurate one musicnn-finetuned (or musicnn-heads, its teachers frozen; musicnn-midend-finetuned, the top of their mid-end tuned too); the default, cnn-tf-stats, needs neither'
complete -c qbsd -n '__fish_seen_subcommand_from train' -l output -s o -r -F -d 'Where to write the ONNX model; if not given, models/qbsd.onnx, or models/qbsd-accurate.onnx for the musicnn-* recipes'
complete -c qbsd -n '__fish_seen_subcommand_from train' -l epochs -x -d 'Train this many epochs on every song (no early stopping)'
complete -c qbsd -n '__fish_seen_subcommand_from train' -l epochs-from-cv -r -F -d 'Train each recipe for its median best epoch in this `qbsd evaluate` results folder, on every song'
complete -c qbsd -n '__fish_seen_subcommand_from train' -l limit -x -d 'Use only the first N songs (smoke tests)'
complete -c qbsd -n '__fish_seen_subcommand_from train' -l cache -x -a '(__fish_complete_directories (commandline -ct))' -d 'Feature cache folder; if not given, ~/.cache/qbsd/frames'
complete -c qbsd -n '__fish_seen_subcommand_from train' -l jobs -s j -x -d 'Files analysed in parallel; 0 (the default): all cores'
complete -c qbsd -n '__fish_seen_subcommand_from train' -l int8-convolutions -d 'Write the model with its convolutions in int8 (static, calibrated on the unlabelled corpus), as the shipped fast model; the float model is removed once quantised'
complete -c qbsd -n '__fish_seen_subcommand_from train' -l help -s h -d 'Show this message and exit'

# qbsd evaluate
complete -c qbsd -n '__fish_seen_subcommand_from evaluate' -l data -r -F -d 'A 4Q folder, a CAL500 folder or a path,tags CSV'
complete -c qbsd -n '__fish_seen_subcommand_from evaluate' -l layout -x -d 'moods4q, cal500 or csv'
complete -c qbsd -n '__fish_seen_subcommand_from evaluate' -l methods -x -d 'Comma-separated baselines, recipes, ensembles and blends, and the query-by-example references mfcc-stats-cosine, musicnn-embedding-cosine, musicnn-mtt-embedding-cosine; all: every one (well over an hour on 2 cores the first time; finished folds are reused)'
complete -c qbsd -n '__fish_seen_subcommand_from evaluate' -l results -x -a '(__fish_complete_directories (commandline -ct))' -d 'Folder for the table, JSON, plots and per-fold scores'
complete -c qbsd -n '__fish_seen_subcommand_from evaluate' -l cache -x -a '(__fish_complete_directories (commandline -ct))' -d 'Feature cache folder'
complete -c qbsd -n '__fish_seen_subcommand_from evaluate' -l jobs -s j -x -d 'Files analysed in parallel; 0 (the default): all cores'
complete -c qbsd -n '__fish_seen_subcommand_from evaluate' -l help -s h -d 'Show this message and exit'
