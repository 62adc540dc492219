"""The demo's scripted tasks: for each, the screens passed through, the action taken and the reasoning."""

from demo.model import APP_NAME

# (screen, action, target label or None, thinking); click/long_press coordinates come from the target.
TRAJECTORIES = (
    ("open_sales_folder", "Open CloudDrive and find the Sales folder", (
        ("home", {"action": "open", "text": APP_NAME}, None,
         "The home screen shows the app grid, with CloudDrive in the second row next to Maps. "
         "Launching CloudDrive by name is the quickest way into the user's files."),
        ("files_root", {"action": "click"}, "row: Sales",
         "CloudDrive opened on My Drive, which lists Sales, Marketing, Finance, Photos, Projects and Personal. "
         "Sales is the first folder row, so I tap it to open the folder."),
        ("folder_sales", {"action": "terminate", "status": "success"}, None,
         "The header now reads Sales and the screen shows the Contracts and Leads subfolders above files "
         "such as Q3 report.pdf. The Sales folder is open, so the task is complete."),
    )),
    ("share_q3_report_with_alice", "Share the Q3 report from Sales with Alice", (
        ("home", {"action": "click"}, "app icon: CloudDrive",
         "I am on the home screen and the blue CloudDrive icon sits at the start of the second app row. "
         "Tapping it opens the cloud drive where the Q3 report is stored."),
        ("files_root", {"action": "click"}, "row: Sales",
         "My Drive lists the top-level folders, and a Q3 sales report belongs in the Sales folder at the top. "
         "Opening Sales should show the report file."),
        ("folder_sales", {"action": "long_press"}, "row: Q3 report.pdf",
         "The Sales folder lists Q3 report.pdf as the first file, below the Contracts and Leads folders. "
         "A long press on that row opens its options, which include sharing."),
        ("file_menu", {"action": "click"}, "button: Share",
         "A sheet with options for Q3 report.pdf slid up, offering Share, Rename, Move, Download and Delete. "
         "Share is the option that lets me add Alice, so I tap it."),
        ("share_dialog", {"action": "click"}, "row: Alice Chen",
         "The share dialog suggests Alice Chen, Bob Martin and Carol Diaz, and the Confirm button is greyed out "
         "because nobody is selected. Alice Chen at alice@example.com is the person the task names, so I select "
         "her row."),
        ("share_dialog_alice", {"action": "click"}, "button: Confirm",
         "Alice Chen is now ticked, appears as a chip in the people field, and the Confirm button has turned "
         "blue. Tapping Confirm sends the share to her."),
        ("folder_sales", {"action": "terminate", "status": "success"}, None,
         "The dialog has closed and I am back in the Sales folder with Q3 report.pdf still listed first. "
         "The report was shared with Alice when I confirmed, so the task is done."),
    )),
    ("create_archive_folder", "Create a new folder named Archive in My Drive", (
        ("folder_sales", {"action": "system_button", "button": "back"}, None,
         "I am inside the Sales folder, but the Archive folder belongs at the top level of My Drive. "
         "Pressing the system back button returns to My Drive."),
        ("files_root", {"action": "click"}, "button: New folder",
         "My Drive is open with the Upload and New folder buttons above the list, and there is no Archive "
         "folder yet. Tapping New folder starts creating one here."),
        ("new_folder_dialog", {"action": "type", "text": "Archive"}, None,
         "A New folder dialog appeared with an empty Folder name field that already holds the cursor, and the "
         "keyboard is open. I type the requested name Archive."),
        ("new_folder_named", {"action": "click"}, "button: Confirm",
         "The Folder name field now contains Archive and the Confirm button has become active. "
         "Tapping Confirm creates the folder."),
        ("files_root_archive", {"action": "terminate", "status": "success"}, None,
         'A message at the bottom says Folder "Archive" created, and Archive now heads the My Drive list. '
         "The new folder exists, so the task is complete."),
    )),
    ("search_for_sales", "Search for 'sales' and open the Sales folder from the results", (
        ("files_root", {"action": "click"}, "button: Search",
         "My Drive shows the folder list, and the header has a magnifier button at its right end. "
         "Tapping it opens search so I can look for sales."),
        ("search", {"action": "type", "text": "sales"}, None,
         "The search screen shows an empty Search in Drive field with the cursor in it, a few recent searches "
         "and the keyboard. I type the query sales into the focused field."),
        ("search_results", {"action": "click"}, "row: Sales",
         "Three results match sales: the Sales folder in My Drive, Sales kickoff.pptx in Marketing and "
         "Sales targets.xlsx in Finance. The task wants the folder, so I tap the first result with the folder "
         "icon."),
        ("folder_sales", {"action": "terminate", "status": "success"}, None,
         "The Sales folder is open, showing its Contracts and Leads subfolders and the Q3 and Q2 reports. "
         "The search led to the right folder, so the task is complete."),
    )),
    ("browse_shared_with_me", "Close the file menu and see what others have shared with me", (
        ("file_menu", {"action": "swipe", "direction": "down"}, "icon: sheet handle",
         "An options sheet for Q3 report.pdf covers the lower half of the Sales folder, and none of its "
         "options is needed. Swiping the sheet down from its handle dismisses it."),
        ("folder_sales", {"action": "click"}, "tab: Shared",
         "The sheet is gone and the Sales folder is visible again, with the Files, Recent, Shared and Me tabs "
         "at the bottom. The Shared tab lists what other people have shared with me, so I tap it."),
        ("shared", {"action": "terminate", "status": "success"}, None,
         "The Shared with me screen shows the folders Team offsite, Design assets, Board meeting and Budget 2025, "
         "each with the name of whoever shared it. That is what the task asked to see, so I am done."),
    )),
)
POINTED_ACTIONS = ("click", "long_press")
